"""One trial: train a fresh child under a policy on the search subset, score it on validation samples."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

import numpy as np

from deepaug_pipeline.augment.policy import Policy, apply_policy
from deepaug_pipeline.ingest.sources import LabelledImages
from deepaug_pipeline.models import build_model
from deepaug_pipeline.models.training import FitSettings, History, Trainer, no_augmentation
from deepaug_pipeline.search.reward import trial_reward
from deepaug_pipeline.seeding import stream_rng, stream_seed


@dataclass(frozen=True)
class ChildSettings:
    """What a trial trains and how it is scored."""

    model: str = "fastcnn"
    model_options: dict | None = None
    epochs: int = 20
    first_train_epochs: int = 0
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 2e-3
    opt_samples: int = 1
    last_n_epochs: int = 3
    overfit_gap: float = 0.10
    validation_sample_size: int = 1000


def sample_validation_set(pool: LabelledImages, size: int, rng: np.random.Generator) -> LabelledImages:
    """A fresh random sample of ``size`` images from the seed validation pool."""
    idx = np.sort(rng.choice(len(pool), size=size, replace=False))
    return LabelledImages(pool.x[idx], pool.y[idx])


class TrialRunner:
    """Builds and traces the child once per process; every ``run`` resets it instead of rebuilding."""

    def __init__(
        self,
        subset: LabelledImages,
        pool: LabelledImages,
        n_classes: int,
        settings: ChildSettings,
        seed: int,
        op_indices: tuple[int, ...] | None = None,
    ) -> None:
        import keras

        from deepaug_pipeline.devices import configure_tensorflow

        configure_tensorflow()
        self.settings = settings
        self.seed = seed
        keras.utils.set_random_seed(stream_seed(seed, "child_init"))
        model = build_model(settings.model, subset.x.shape[1:], n_classes, **(settings.model_options or {}))
        fit = FitSettings(
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            optimizer=settings.optimizer,
            learning_rate=settings.learning_rate,
        )
        self.trainer = Trainer(
            model, subset, fit, augment=lambda x, policy, s: apply_policy(x, policy, s, op_indices)
        )
        # The same validation samples for every trial (common random numbers): policies differ, noise does not.
        self.validation_sets = [
            sample_validation_set(pool, settings.validation_sample_size, stream_rng(seed, "validation", s))
            for s in range(settings.opt_samples)
        ]
        if settings.first_train_epochs > 0:
            self._pretrain(subset)

    def _pretrain(self, subset: LabelledImages) -> None:
        """Train once without augmentation; every trial then starts from these weights."""
        pre = Trainer(
            self.trainer.model,
            subset,
            FitSettings(epochs=self.settings.first_train_epochs, batch_size=self.settings.batch_size,
                        optimizer=self.settings.optimizer, learning_rate=self.settings.learning_rate),
            augment=no_augmentation,
        )
        pre.fit((), stream_seed(self.seed, "pretrain"), self.validation_sets[0])
        self.trainer.adopt_current_weights()

    @property
    def model(self):
        return self.trainer.model

    def run(self, policy: Policy) -> dict:
        """Train ``opt_samples`` fits under ``policy``; a record with reward, histories and status."""
        s = self.settings
        start = time.perf_counter()
        histories: list[History] = []
        record: dict = {"status": "ok", "reason": None}
        try:
            for i, validation in enumerate(self.validation_sets):
                self.trainer.reset()
                history = self.trainer.fit(policy.tensors(), stream_seed(self.seed, "fit", i), validation)
                histories.append(history)
                if not history.finite:
                    raise FloatingPointError(f"non-finite loss in sample {i} (train {history.train_loss.tolist()})")
            reward, samples = trial_reward(histories, s.last_n_epochs, s.overfit_gap)
            record.update(reward=reward, fallback=any(x.fallback for x in samples),
                          sample_rewards=[x.reward for x in samples], epochs_used=[x.epochs_used for x in samples])
        except Exception as exc:  # a failed trial scores 0 and the search goes on
            record.update(status="failed", reason=f"{type(exc).__name__}: {exc}", reward=0.0, fallback=False,
                          traceback=traceback.format_exc(limit=5))
        record["histories"] = [h.to_dict() for h in histories]
        record["wall_seconds"] = time.perf_counter() - start
        return record
