"""Final comparison: train the final model per strategy × seed on TRAIN, score on the untouched test split."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import get_args

import numpy as np
import pandas as pd
import tensorflow as tf

from deepaug_pipeline.augment import baselines
from deepaug_pipeline.augment.baselines import BASE_LABELS
from deepaug_pipeline.augment.policy import Policy, apply_policy
from deepaug_pipeline.config import EvaluateConfig, Strategy
from deepaug_pipeline.ingest.sources import LabelledImages
from deepaug_pipeline.ingest.split import stratified_indices
from deepaug_pipeline.models import build_model
from deepaug_pipeline.models.training import AugmentFn, FitSettings, Trainer, no_augmentation
from deepaug_pipeline.search.trial_log import TrialLog
from deepaug_pipeline.seeding import stream_rng, stream_seed

log = logging.getLogger(__name__)

def strategy_labels(base: str = "standard") -> dict[str, str]:
    """What each strategy is, in words, on top of the base augmentation the search chose."""
    b = BASE_LABELS[base]
    return {
        "none": "none",
        "standard": f"standard ({b})",
        "standard+found": f"{b} + found policy",
        "standard+randaugment": f"{b} + RandAugment",
        "standard+trivialaugment": f"{b} + TrivialAugment-Wide",
    }


def found_base(found: Policy) -> str:
    """The base augmentation the search chose (written with the policy); crop + flip for a policy from elsewhere."""
    return found.metadata.get("base_augmentation", "standard")


def policy_identity(found: Policy) -> dict:
    """What an evaluation of ``found`` depends on: its operations and its base, not its metadata, so a resumed
    search that found the same policy resumes the evaluation's run log too."""
    return {"sub_policies": found.to_dict()["sub_policies"], "p_none": found.p_none, "base": found_base(found)}


def strategy_aliases(base: str, found: Policy | None) -> dict[str, str]:
    """Strategies that are the same training as another and are not trained twice: ``standard`` is ``none`` when
    the search chose no base; ``standard+found`` is ``standard`` when no policy beat the base beyond noise."""
    aliases = {"standard": "none"} if base == "none" else {}
    if found is not None and found.is_empty:
        aliases["standard+found"] = aliases.get("standard", "standard")
    return aliases


def _then(first: Callable, second: Callable) -> AugmentFn:
    def fn(x, aug_args, seed):
        s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        return second(first(x, s1), s2)

    return fn


def strategy_augment(name: str, found: Policy | None, cfg: EvaluateConfig, base: str = "standard") -> AugmentFn:
    """The per-batch augmentation of one strategy (float [0, 1] images in and out); ``standard`` is ``base``."""
    params = baselines.base_params(base)

    def standard(x, seed):
        return baselines.base_augment(x, params, seed)

    if name == "none":
        return no_augmentation
    if name == "standard":
        return lambda x, aug_args, seed: standard(x, seed)
    if name == "standard+found":
        if found is None:
            raise ValueError("strategy 'standard+found' needs the search's best policy")
        tensors, available = found.tensors(), found.op_indices()
        return _then(standard, lambda x, s: apply_policy(x, tensors, s, available))
    if name == "standard+randaugment":
        return _then(standard, lambda x, s: baselines.randaugment(x, s, cfg.randaugment_n, cfg.randaugment_m))
    if name == "standard+trivialaugment":
        return _then(standard, baselines.trivialaugment_wide)
    raise ValueError(f"unknown strategy '{name}'")


def final_splits(
    train: LabelledImages, class_names: list[str], cfg: EvaluateConfig, seed: int
) -> tuple[LabelledImages, LabelledImages]:
    """A stratified training subset of TRAIN (``train_size``, or all) and a held-out validation sample."""
    idx_val, idx_rest = stratified_indices(train.y, class_names, cfg.validation_size, stream_rng(seed, "eval_val"), "evaluation validation sample")
    rest = LabelledImages(train.x[idx_rest], train.y[idx_rest])
    val = LabelledImages(train.x[idx_val], train.y[idx_val])
    if cfg.train_size is None or cfg.train_size >= len(rest):
        return rest, val
    idx_train, _ = stratified_indices(rest.y, class_names, cfg.train_size, stream_rng(seed, "eval_train"), "evaluation training subset")
    return LabelledImages(rest.x[idx_train], rest.y[idx_train]), val


class FinalTrainer:
    """The final model for every strategy and seed of one evaluation, on one traced training graph.

    A strategy is data (which augmentation branch of one ``switch_case`` runs) and a seed is the initial weights and
    the data order, so nothing retraces from one run to the next: a Trainer per run traced its own graph each time
    (seconds per run, and TensorFlow's retracing warnings between strategies)."""

    def __init__(self, train: LabelledImages, val: LabelledImages, test: LabelledImages, n_classes: int,
                 found: Policy | None, cfg: EvaluateConfig, seed: int, base: str = "standard") -> None:  # fmt: skip
        from deepaug_pipeline.devices import configure_tensorflow

        configure_tensorflow()
        self.cfg, self.seed, self.val, self.test = cfg, seed, val, test
        self._shape, self._n_classes = train.x.shape[1:], n_classes
        self.strategies = [s for s in get_args(Strategy) if s != "standard+found" or found is not None]
        branches = [strategy_augment(s, found, cfg, base) for s in self.strategies]

        def augment(x, strategy_index, seed):
            return tf.switch_case(strategy_index, [functools.partial(branch, x, (), seed) for branch in branches])

        settings = FitSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer=cfg.optimizer,
                               learning_rate=cfg.learning_rate, momentum=cfg.momentum, schedule=cfg.schedule)  # fmt: skip
        self.trainer = Trainer(self._model(self._run_seed(0)), train, settings, augment)

    def _run_seed(self, seed_index: int) -> int:
        return stream_seed(self.seed, "evaluate", seed_index)

    def _model(self, run_seed: int):
        import keras

        keras.utils.set_random_seed(run_seed)
        return build_model(self.cfg.model, self._shape, self._n_classes, **self.cfg.model_options)

    def run(self, strategy: str, seed_index: int) -> dict:
        """One final model for one strategy and seed: its curves and its test accuracy."""
        if strategy not in self.strategies:
            raise ValueError(f"strategy '{strategy}' needs the search's best policy" if strategy == "standard+found" else f"unknown strategy '{strategy}'")
        run_seed = self._run_seed(seed_index)
        self.trainer.reset([v.numpy() for v in self._model(run_seed).variables])  # this seed's initial weights
        start = time.perf_counter()
        strategy_index = tf.constant(self.strategies.index(strategy), tf.int32)
        history = self.trainer.fit(strategy_index, run_seed, self.val)
        test_loss, test_acc = self.trainer.evaluate(self.test)
        status = "ok" if history.finite and np.isfinite(test_loss) else "failed"
        return {
            "strategy": strategy,
            "seed_index": seed_index,
            "status": status,
            "test_accuracy": test_acc,
            "test_error": 1.0 - test_acc,
            "test_loss": test_loss,
            "history": history.to_dict(),
            "wall_seconds": time.perf_counter() - start,
            "finished_at": time.time(),
        }


def run_grid(
    cfg: EvaluateConfig,
    run_log: TrialLog,
    train_one: Callable[[str, int], dict],
    aliases: dict[str, str] | None = None,
) -> list[dict]:
    """Every (strategy, seed) run, resuming those already in ``run_log``; returns them in grid order. A strategy in
    ``aliases`` is not trained: it reuses the runs of the strategy it is the same as (marked ``same_as``)."""
    aliases = aliases or {}
    done = {(t["strategy"], t["seed_index"]): t for t in run_log.trials}

    def run(strategy: str, seed_index: int) -> dict:
        key = (strategy, seed_index)
        if key in done:
            return done[key]
        if strategy in aliases:
            same = run(aliases[strategy], seed_index)
            done[key] = {**same, "key": f"{strategy}/{seed_index}", "strategy": strategy, "same_as": same["strategy"]}
            return done[key]
        log.info("Evaluating %s, seed %d", strategy, seed_index)
        record = {"key": f"{strategy}/{seed_index}", **train_one(strategy, seed_index)}
        run_log.append(record)
        done[key] = record
        log.info("  test accuracy %.4f (%.0f s)", record["test_accuracy"], record["wall_seconds"])
        return record

    return [run(strategy, seed_index) for seed_index in range(cfg.seeds) for strategy in cfg.strategies]


def results_table(runs: list[dict], strategies: list[str], base: str = "standard") -> pd.DataFrame:
    """Per strategy: test accuracy and error as mean ± std over seeds, and error reductions vs none / standard."""
    frame = pd.DataFrame([r for r in runs if r["status"] == "ok"])
    labels = strategy_labels(base)
    same_as = {r["strategy"]: r["same_as"] for r in runs if r.get("same_as")}
    rows = []
    for name in strategies:
        part = frame[frame["strategy"] == name] if len(frame) else frame
        acc = part["test_accuracy"].to_numpy() if len(part) else np.array([])
        rows.append(
            {
                "strategy": name,
                "label": labels[name],
                "same_as": same_as.get(name),  # trained once, as this other strategy
                "runs": len(acc),
                "test_accuracy_mean": float(acc.mean()) if len(acc) else np.nan,
                "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                "test_error_mean": float(1 - acc.mean()) if len(acc) else np.nan,
                "test_error_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            }
        )
    table = pd.DataFrame(rows)
    errors = dict(zip(table["strategy"], table["test_error_mean"]))
    for ref in ("none", "standard"):
        base = errors.get(ref)
        table[f"error_reduction_vs_{ref}"] = (
            [(base - e) / base if base else np.nan for e in table["test_error_mean"]] if base is not None else np.nan
        )
    return table
