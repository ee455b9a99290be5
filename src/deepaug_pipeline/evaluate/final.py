"""The final models: the training and validation splits of TRAIN, one traced trainer for every strategy and seed,
and the grid of runs, resumed from the evaluation's run log."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import get_args

import numpy as np
import tensorflow as tf

from deepaug_pipeline.augment.policy import Policy
from deepaug_pipeline.config import ConfigError, EvaluateConfig, Strategy, refuse_batch_over_set
from deepaug_pipeline.data import LabelledImages
from deepaug_pipeline.evaluate.records import EvaluationRun
from deepaug_pipeline.evaluate.strategies import strategy_augment
from deepaug_pipeline.ingest.split import stratified_allocation, stratified_draw, stratified_indices
from deepaug_pipeline.models import build_model
from deepaug_pipeline.models.training import FitSettings, Trainer
from deepaug_pipeline.run_log import TrialLog
from deepaug_pipeline.seeding import stream_rng, stream_seed

log = logging.getLogger(__name__)


def final_splits(
    train: LabelledImages, class_names: list[str], cfg: EvaluateConfig, seed: int
) -> tuple[LabelledImages, LabelledImages]:
    """A stratified training subset of TRAIN (``train_size``, or all) and a held-out validation sample."""
    idx_val, idx_rest = stratified_indices(train.y, class_names, cfg.validation_size, stream_rng(seed, "eval_val"), "evaluation validation sample (evaluate.validation_size)")
    rest = LabelledImages(train.x[idx_rest], train.y[idx_rest])
    val = LabelledImages(train.x[idx_val], train.y[idx_val])
    training = rest
    if cfg.train_size is not None and cfg.train_size < len(rest):
        idx_train, _ = stratified_indices(rest.y, class_names, cfg.train_size, stream_rng(seed, "eval_train"), "evaluation training subset (evaluate.train_size)")
        training = LabelledImages(rest.x[idx_train], rest.y[idx_train])
    refuse_batch_over_set(cfg.batch_size, f"evaluate.batch_size={cfg.batch_size}", len(training.y),
                          f"the final models' training set ({len(training.y)} images, evaluate.train_size)")  # fmt: skip
    return training, val


def scoring_sample(test: LabelledImages, class_names: list[str], cfg: EvaluateConfig, seed: int) -> LabelledImages:
    """The test images every final model is scored on: a stratified ``test_size`` sample, or all of them. Unlike a
    split, a sample may take every image of a class; it must take at least one of each."""
    if cfg.test_size is None or cfg.test_size >= len(test.y):
        return test
    alloc = stratified_allocation(test.y, len(class_names), cfg.test_size)
    counts = np.bincount(test.y, minlength=len(class_names))
    empty = [f"'{class_names[c]}'" for c in np.flatnonzero((counts > 0) & (alloc < 1))]
    if empty:
        raise ConfigError(f"evaluate.test_size={cfg.test_size} leaves class(es) {', '.join(empty)} out of the test sample "
                          f"({len(test.y)} test images, {len(class_names)} classes): raise it, or set null to score them all")  # fmt: skip
    idx = stratified_draw(test.y, alloc, stream_rng(seed, "eval_test"))
    return LabelledImages(test.x[idx], test.y[idx])


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
        # Every seed's initial weights before the first fit (seed 0's from the model the trainer trains): drawing them
        # seeds TensorFlow, which clears its kernel cache, so one drawn per run made every run instantiate the training
        # graph again.
        models = [self._model(self._run_seed(i)) for i in range(cfg.seeds)]
        self._initial_weights = [[v.numpy() for v in model.variables] for model in models]
        # Seed 0's graph seed for every run, whichever the process trains first (a resumed evaluation): see Trainer.
        self.trainer = Trainer(models[0], train, settings, augment, graph_seed=self._run_seed(0))

    def _run_seed(self, seed_index: int) -> int:
        return stream_seed(self.seed, "evaluate", seed_index)

    def _model(self, run_seed: int):
        import keras

        keras.utils.set_random_seed(run_seed)
        return build_model(self.cfg.model, self._shape, self._n_classes, **self.cfg.model_options)

    def run(self, strategy: str, seed_index: int) -> EvaluationRun:
        """One final model for one strategy and seed: its curves and its test accuracy."""
        if strategy not in self.strategies:
            raise ValueError(f"strategy '{strategy}' needs the search's best policy" if strategy == "standard+found" else f"unknown strategy '{strategy}'")
        run_seed = self._run_seed(seed_index)
        self.trainer.reset(self._initial_weights[seed_index])
        start = time.perf_counter()
        strategy_index = tf.constant(self.strategies.index(strategy), tf.int32)
        history = self.trainer.fit(strategy_index, run_seed, self.val)
        test_loss, test_acc = self.trainer.evaluate(self.test)
        status = "ok" if history.finite and np.isfinite(test_loss) else "failed"
        return EvaluationRun(
            key=f"{strategy}/{seed_index}", strategy=strategy, seed_index=seed_index, status=status,
            test_accuracy=test_acc, test_error=1.0 - test_acc, test_loss=test_loss, history=history.to_dict(),
            wall_seconds=time.perf_counter() - start, finished_at=time.time(),
        )  # fmt: skip


def run_grid(
    cfg: EvaluateConfig,
    run_log: TrialLog,
    train_one: Callable[[str, int], EvaluationRun],
    aliases: dict[str, str] | None = None,
) -> list[EvaluationRun]:
    """Every (strategy, seed) run, resuming those already in ``run_log``; returns them in grid order. A strategy in
    ``aliases`` is not trained: it reuses the runs of the strategy it is the same as (marked ``same_as``).

    A logged run that failed (a loss that was not finite) is a result, and is resumed like any other: the same seed
    diverges again on CPU, and training again until a run finishes would report the lucky draw. The report names it."""
    aliases = aliases or {}
    done = {(r.strategy, r.seed_index): r for r in map(EvaluationRun.from_json, run_log.trials)}

    def run(strategy: str, seed_index: int) -> EvaluationRun:
        key = (strategy, seed_index)
        if key in done:
            return done[key]
        if strategy in aliases:
            same = run(aliases[strategy], seed_index)
            done[key] = replace(same, key=f"{strategy}/{seed_index}", strategy=strategy, same_as=same.strategy)
            return done[key]
        log.info("Evaluating %s, seed %d", strategy, seed_index)
        record = train_one(strategy, seed_index)
        run_log.append(record.to_json())
        done[key] = record
        log.info("  test accuracy %.4f (%.0f s)", record.test_accuracy, record.wall_seconds)
        return record

    return [run(strategy, seed_index) for seed_index in range(cfg.seeds) for strategy in cfg.strategies]
