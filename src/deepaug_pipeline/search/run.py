"""Everything a search needs, assembled from validated config: used by the Kedro node and the Python API."""

from __future__ import annotations

import logging

from deepaug_pipeline.augment import ops as ops_lib
from deepaug_pipeline.config import IngestConfig, SearchConfig
from deepaug_pipeline.ingest.sources import LabelledImages
from deepaug_pipeline.search.controller import SearchLoop
from deepaug_pipeline.search.executors import DaskExecutor, TrialJob
from deepaug_pipeline.search.space import PolicySpace
from deepaug_pipeline.search.tracking import TrackingTarget, TrialTracker
from deepaug_pipeline.search.trial import ChildSettings, TrialRunner
from deepaug_pipeline.search.trial_log import TrialLogStore

log = logging.getLogger(__name__)


def policy_space(cfg: SearchConfig, channels: int) -> PolicySpace:
    """The search space for images with ``channels`` channels."""
    names = ops_lib.search_ops(channels, tuple(cfg.ops) if cfg.ops else ops_lib.DEEPAUGMENT_OPS)
    return PolicySpace(names, cfg.sub_policies, cfg.ops_per_sub_policy, cfg.per_op_probability, cfg.p_none)


def child_settings(cfg: SearchConfig, ingest: IngestConfig) -> ChildSettings:
    return ChildSettings(
        model=cfg.model,
        model_options=dict(cfg.model_options),
        epochs=cfg.child_epochs,
        first_train_epochs=cfg.child_first_train_epochs,
        batch_size=cfg.child_batch_size,
        optimizer=cfg.child_optimizer,
        learning_rate=cfg.child_learning_rate,
        opt_samples=cfg.opt_samples,
        last_n_epochs=cfg.opt_last_n_epochs,
        overfit_gap=cfg.overfit_gap,
        validation_sample_size=ingest.validation_sample_size,
    )


def log_config(cfg: SearchConfig, ingest: IngestConfig, seed: int, data_summary: dict) -> dict:
    """What the trial log's fingerprint covers: anything that changes a trial's result."""
    return {
        "seed": seed,
        "search": cfg.result_defining(),
        "ingest": ingest.model_dump(),
        "data": {k: data_summary[k] for k in ("image_shape", "n_classes", "sizes")},
    }


def run_search(
    subset: LabelledImages,
    pool: LabelledImages,
    data_summary: dict,
    store: TrialLogStore,
    cfg: SearchConfig,
    ingest: IngestConfig,
    seed: int,
    tracking: TrackingTarget | None = None,
) -> list[dict]:
    """Resume or start the search; returns every trial (0 = baseline) in id order."""
    channels = int(subset.x.shape[-1])
    space = policy_space(cfg, channels)
    trial_log = store.open(cfg.method, log_config(cfg, ingest, seed, data_summary), cfg.fresh_start)
    if trial_log.archived:
        log.warning("Started a fresh search; the previous trial log is kept as %s", trial_log.archived)
    settings = child_settings(cfg, ingest)
    if cfg.executor == "local":
        runner = TrialRunner(subset, pool, data_summary["n_classes"], settings, seed, space.op_indices())
        loop = SearchLoop(space, cfg, seed, trial_log, runner.run, TrialTracker(tracking), grid_images=subset.x[:6])
        return loop.run()

    executor = DaskExecutor(subset, pool, cfg.address, cfg.n_workers, cfg.threads_per_worker)

    def make_job(trial: dict, baseline_reward: float | None) -> TrialJob:
        return TrialJob(
            trial={k: trial[k] for k in ("trial_id", "method", "policy", "point")},
            settings=settings, n_classes=data_summary["n_classes"], seed=seed, op_indices=space.op_indices(),
            tracking=tracking, param_names=tuple(space.dimension_names()), with_grid=cfg.track_sample_grids,
            baseline_reward=baseline_reward,
        )  # fmt: skip

    try:
        return SearchLoop(space, cfg, seed, trial_log, executor=executor, make_job=make_job).run()
    finally:
        executor.close()
