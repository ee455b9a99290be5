"""One fit: train the child under (base augmentation, policy, seed) on the search subset, score it on validation.

The child is built and traced once per process. A fit then only resets state: the seed's initial weights, a fresh
optimiser, and the seed's validation sample. The base, the policy and the seed are data fed to the traced graph,
so nothing retraces between trials, stages or seeds.
"""

from __future__ import annotations

import os
import socket
import time
import traceback

import numpy as np

from deepaug_pipeline.augment.baselines import base_augment, base_params
from deepaug_pipeline.augment.policy import Policy, apply_policy
from deepaug_pipeline.config import ChildConfig
from deepaug_pipeline.data import LabelledImages
from deepaug_pipeline.models import build_model
from deepaug_pipeline.models.training import FitSettings, Trainer, no_augmentation
from deepaug_pipeline.search.records import FitOutcome, FitRequest
from deepaug_pipeline.search.reward import reward, validated_epochs
from deepaug_pipeline.seeding import stream_rng, stream_seed


def child_fit_settings(child: ChildConfig, epochs: int | None = None, validate_last: int | None = None) -> FitSettings:
    """How the child trains: ``epochs`` of it (all by default), validating the last ``validate_last`` only."""
    return FitSettings(epochs=epochs or child.epochs, batch_size=child.batch_size, optimizer=child.optimizer,
                       learning_rate=child.learning_rate, schedule=child.schedule, validate_last=validate_last)  # fmt: skip


def validation_part(pool: LabelledImages, size: int, seed_index: int, order: np.ndarray) -> LabelledImages:
    """Seed ``seed_index``'s validation sample: the next ``size`` images of one random ``order`` of the pool. Seeds'
    samples are then disjoint, so each is an independent sample and the spread of paired gains between seeds holds
    the validation noise as well as the training noise (images two seeds shared would be an error common to all of
    them, which no spread shows). Past the pool's end the parts wrap round and overlap (``run_search`` warns)."""
    n = min(size, len(pool))
    start = seed_index * n % len(pool)
    idx = np.sort(np.take(order, np.arange(start, start + n), mode="wrap"))
    return LabelledImages(pool.x[idx], pool.y[idx])


def sample_validation_set(pool: LabelledImages, size: int, rng: np.random.Generator) -> LabelledImages:
    """A random sample of ``size`` images from the seed validation pool, or the whole pool when it holds no more:
    every seed then validates on the same images, with no sampling noise between them."""
    if size >= len(pool):
        return pool
    idx = np.sort(rng.choice(len(pool), size=size, replace=False))
    return LabelledImages(pool.x[idx], pool.y[idx])


class TrialRunner:
    """Runs fits in this process; the child graph is traced once, each seed's starting point is made once."""

    def __init__(
        self,
        subset: LabelledImages,
        pool: LabelledImages,
        n_classes: int,
        child: ChildConfig,
        seed: int,
        op_indices: tuple[int, ...] | None = None,
        n_seeds: int = 1,
    ) -> None:
        import tensorflow as tf

        from deepaug_pipeline.devices import configure_tensorflow

        configure_tensorflow()
        self.child = child
        self.seed = seed
        self.subset = subset
        self.pool = pool
        self.n_classes = n_classes

        def augment(x, aug_args, fit_seed):
            base, policy = aug_args
            s_base, s_policy = tf.unstack(tf.random.experimental.stateless_split(fit_seed, 2))
            return apply_policy(base_augment(x, base, s_base), policy, s_policy, op_indices)

        # Keras draws initial weights under TensorFlow's global seed, and setting that clears TensorFlow's kernel
        # cache: a seed drawn after the first fit makes the next fit instantiate its graph again (3 s on 2 cores,
        # measured 2026-12-03). So the seeds a search uses (``n_seeds``) are drawn now, seed 0's from the child the
        # trainer trains; any other when first asked for.
        model = self._model_for_seed(0)
        self._initial_weights = {0: [v.numpy() for v in model.variables]}
        # Every fit's data order comes from seed 0's graph seed, whichever seed a process fits first (before this was
        # set, an uninterrupted local search traced under that value too).
        fit = child_fit_settings(child, validate_last=validated_epochs(child.reward_epochs, child.last_n_epochs))
        self.trainer = Trainer(model, subset, fit, augment=augment, graph_seed=stream_seed(seed, "child_init", 0))
        self._pretrainer: Trainer | None = None
        for seed_index in range(1, n_seeds):
            self.initial_weights(seed_index)
        self._starts: dict[int, list] = {}
        self._validation: dict[int, LabelledImages] = {}
        self._density_images: dict[int, LabelledImages] = {}

    def _model_for_seed(self, seed_index: int):
        import keras

        keras.utils.set_random_seed(stream_seed(self.seed, "child_init", seed_index))
        return build_model(self.child.model, self.subset.x.shape[1:], self.n_classes, **self.child.model_options)

    def initial_weights(self, seed_index: int) -> list:
        """Seed ``seed_index``'s randomly initialised weights."""
        if seed_index not in self._initial_weights:
            self._initial_weights[seed_index] = [v.numpy() for v in self._model_for_seed(seed_index).variables]
        return self._initial_weights[seed_index]

    def start_state(self, seed_index: int) -> list:
        """The initial weights of seed ``seed_index`` (pre-trained without augmentation when configured)."""
        if seed_index not in self._starts:
            state = self.initial_weights(seed_index)
            if self.child.first_train_epochs > 0:
                if self._pretrainer is None:
                    # Validated on its last epoch only: nothing reads the others (each validation pass cost about
                    # 2.7 epochs of training on the default child). The fits after it start their schedule afresh.
                    pretraining = child_fit_settings(self.child, self.child.first_train_epochs, validate_last=1)
                    self._pretrainer = Trainer(self.trainer.model, self.subset, pretraining, no_augmentation,
                                               graph_seed=self.trainer.graph_seed)  # fmt: skip
                self._pretrainer.reset(state)
                self._pretrainer.fit((), stream_seed(self.seed, "pretrain", seed_index), self.validation(seed_index))
                state = [v.numpy() for v in self.trainer.model.variables]
            self._starts[seed_index] = state
        return self._starts[seed_index]

    def validation(self, seed_index: int) -> LabelledImages:
        """The validation sample of seed ``seed_index``: the same for every fit under that seed (common random
        numbers, so policies on one seed differ by the policy, not by the sample), and under ``validation_samples:
        disjoint`` no other seed's images."""
        if seed_index not in self._validation:
            size = self.child.validation_sample_size
            if self.child.validation_samples == "disjoint":
                order = stream_rng(self.seed, "validation_order").permutation(len(self.pool))
                self._validation[seed_index] = validation_part(self.pool, size, seed_index, order)
            else:
                rng = stream_rng(self.seed, "validation", seed_index)
                self._validation[seed_index] = sample_validation_set(self.pool, size, rng)
        return self._validation[seed_index]

    def density_images(self, seed_index: int) -> LabelledImages:
        """The held-out images the density reward scores seed ``seed_index``'s child on: a seeded random part of that
        seed's validation sample (which keeps the source's order, often class by class), the same for every policy."""
        if seed_index not in self._density_images:
            sample = self.validation(seed_index)
            idx = stream_rng(self.seed, "density_images", seed_index).permutation(len(sample))[: self.child.density_images]
            self._density_images[seed_index] = LabelledImages(sample.x[idx], sample.y[idx])
        return self._density_images[seed_index]

    @property
    def model(self):
        return self.trainer.model

    @staticmethod
    def _augmentation(request: FitRequest) -> tuple:
        """The augment function's data for ``request``: its base and its policy as tensors."""
        return base_params(request.base), Policy.from_dict(request.policy).tensors()

    def _fit(self, request: FitRequest) -> dict:
        s = self.child
        self.trainer.reset(self.start_state(request.seed_index))
        history = self.trainer.fit(self._augmentation(request), stream_seed(self.seed, "fit", request.seed_index), self.validation(request.seed_index))
        if not history.finite:
            raise FloatingPointError(f"non-finite loss (train {history.train_loss.tolist()})")
        scored = reward(history, s.reward_epochs, s.last_n_epochs, s.overfit_gap)
        weights = tuple(v.numpy() for v in self.model.variables) if request.keep_weights else None
        return dict(reward=scored.value, epochs_used=scored.epochs_used, fallback=scored.fallback,
                    history=history.to_dict(), weights=weights)  # fmt: skip

    def _score(self, request: FitRequest) -> dict:
        """The density reward: the mean accuracy of the base's trained children on their own held-out validation
        images, transformed by base + policy (``density_draws`` draws each); per child in the history."""
        s = self.child
        args = self._augmentation(request)
        accuracy, loss = [], []
        for child in request.children:
            self.trainer.reset(list(child.weights))
            held_out = self.density_images(child.seed_index)
            draws = [self.trainer.evaluate_augmented(args, stream_seed(self.seed, "density", child.seed_index, d), held_out)
                     for d in range(s.density_draws)]  # fmt: skip
            loss.append(float(np.mean([d[0] for d in draws])))
            accuracy.append(float(np.mean([d[1] for d in draws])))
        if not np.isfinite(loss).all():
            raise FloatingPointError(f"non-finite loss on augmented images ({loss})")
        return dict(reward=float(np.mean(accuracy)), history={"density_accuracy": accuracy, "density_loss": loss})

    def run(self, request: FitRequest) -> FitOutcome:
        """One fit (or one density scoring); a failure (NaN loss, any exception) is an outcome with status
        ``failed``, never a raise. A fit that ran out of memory is ``lost`` instead: whether it fits depends on what
        else holds the device (Dask workers sharing a GPU), not on the policy, so the search runs it again."""
        import tensorflow as tf

        started = time.time()
        clock = time.perf_counter()
        try:
            result = dict(status="ok", **(self._score(request) if request.scores_only else self._fit(request)))
        except tf.errors.ResourceExhaustedError as exc:
            first_line = (str(exc).strip().splitlines() or [""])[0][:300]  # TensorFlow's run to dozens of lines
            result = dict(status="failed", reward=0.0, lost=True, reason=f"out of memory ({type(exc).__name__}: {first_line})")
        except Exception as exc:  # a failed fit scores 0 and the search goes on
            result = dict(status="failed", reward=0.0, reason=f"{type(exc).__name__}: {exc}",
                          traceback=traceback.format_exc(limit=5))  # fmt: skip
        return FitOutcome(
            **result, wall_seconds=time.perf_counter() - clock, started_at=started,
            worker=f"{socket.gethostname()}:{os.getpid()}",
        )  # fmt: skip
