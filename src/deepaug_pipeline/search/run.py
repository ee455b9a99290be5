"""Everything a search needs, assembled from validated config: used by the Kedro node and the Python API."""

from __future__ import annotations

import hashlib
import logging

import numpy as np

from deepaug_pipeline.augment import ops as ops_lib
from deepaug_pipeline.config import IngestConfig, SearchConfig, search_result_defining
from deepaug_pipeline.data import LabelledImages
from deepaug_pipeline.run_log import TrialLogStore
from deepaug_pipeline.search.controller import SearchLoop
from deepaug_pipeline.search.executors import DaskExecutor, LocalExecutor, RunnerSpec
from deepaug_pipeline.search.records import SearchResult
from deepaug_pipeline.search.space import PolicySpace
from deepaug_pipeline.search.tracking import TrackingTarget, TrialTracker
from deepaug_pipeline.search.trial import ChildSettings

log = logging.getLogger(__name__)

# identity lets a sub-policy hold a single op (or none), as in AutoAugment's and TrivialAugment's spaces.
DEFAULT_SEARCH_OPS = ("identity", *ops_lib.DEEPAUGMENT_OPS)


def policy_space(cfg: SearchConfig, channels: int) -> PolicySpace:
    """The search space for images with ``channels`` channels."""
    names = ops_lib.search_ops(channels, tuple(cfg.ops) if cfg.ops else DEFAULT_SEARCH_OPS)
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
        schedule=cfg.child_schedule,
        reward_epochs=cfg.reward_epochs,
        last_n_epochs=cfg.opt_last_n_epochs,
        overfit_gap=cfg.overfit_gap,
        validation_size=ingest.validation_sample_size,
        density_images=cfg.density_images,
        density_draws=cfg.density_draws,
    )


def data_fingerprint(*splits: LabelledImages) -> str:
    """A hash of the images and labels a run trains and validates on: another dataset of the same shape and size
    is another run, never a resumed one."""
    digest = hashlib.sha256()
    for array in (a for split in splits for a in (split.x, split.y)):
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()[:16]


def log_config(cfg: SearchConfig, ingest: IngestConfig, seed: int, data_summary: dict, data_hash: str) -> dict:
    """What the trial log's fingerprint covers: anything that changes a fit's result, the data's content included."""
    return canonical_log_config({
        "seed": seed,
        "search": cfg.model_dump(),
        "ingest": ingest.model_dump(),
        "data": {**{k: data_summary[k] for k in ("image_shape", "n_classes", "sizes")}, "content": data_hash},
    })  # fmt: skip


def canonical_log_config(config: dict) -> dict:
    """A search log's config, of this version or an older one, in the form the fingerprint is taken of: the search
    keys that change a fit, and the ingest keys that are set (``value_range`` only when stated)."""
    ingest = {k: v for k, v in config.get("ingest", {}).items() if v is not None}
    return {**config, "search": search_result_defining(config.get("search", {})), "ingest": ingest}


def run_search(
    subset: LabelledImages,
    pool: LabelledImages,
    data_summary: dict,
    store: TrialLogStore,
    cfg: SearchConfig,
    ingest: IngestConfig,
    seed: int,
    tracking: TrackingTarget | None = None,
) -> SearchResult:
    """Resume or start the search: baseline, policy trials, re-evaluation."""
    space = policy_space(cfg, int(subset.x.shape[-1]))
    data_hash = data_fingerprint(subset, pool)
    config = log_config(cfg, ingest, seed, data_summary, data_hash)
    with store.open(cfg.trial_log_name, config, cfg.fresh_start, canonical=canonical_log_config) as trial_log:
        if trial_log.archived:
            log.warning("Started a fresh search; the previous trial log is kept as %s", trial_log.archived)
        spec = RunnerSpec(child_settings(cfg, ingest), data_summary["n_classes"], seed, space.op_indices(), data_hash)
        if cfg.executor == "local":
            executor = LocalExecutor(subset, pool, spec)
        else:
            executor = DaskExecutor(subset, pool, spec, cfg.address, cfg.n_workers, cfg.threads_per_worker)
        try:
            return SearchLoop(space, cfg, seed, trial_log, executor, TrialTracker(tracking, trial_log.identity), grid_images=subset.x[:6]).run()
        finally:
            executor.close()
