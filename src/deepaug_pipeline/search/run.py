"""Everything a search needs, assembled from validated config: used by the Kedro node and the Python API."""

from __future__ import annotations

import logging

import numpy as np

from deepaug_pipeline.augment import ops as ops_lib
from deepaug_pipeline.config import (
    MIN_VALIDATION_SAMPLE,
    ConfigError,
    SearchConfig,
    canonical_search_config,
    refuse_batch_over_set,
)
from deepaug_pipeline.data import LabelledImages, data_fingerprint
from deepaug_pipeline.run_log import TrialLogStore
from deepaug_pipeline.search.controller import SearchLoop
from deepaug_pipeline.search.executors import DaskExecutor, LocalExecutor, RunnerSpec
from deepaug_pipeline.search.records import SearchResult
from deepaug_pipeline.search.space import PolicySpace
from deepaug_pipeline.search.tracking import TrackingTarget, TrialTracker

log = logging.getLogger(__name__)

# identity lets a sub-policy hold a single op (or none), as in AutoAugment's and TrivialAugment's spaces.
DEFAULT_SEARCH_OPS = ("identity", *ops_lib.DEEPAUGMENT_OPS)


def policy_space(cfg: SearchConfig, channels: int) -> PolicySpace:
    """The search space for images with ``channels`` channels."""
    names = ops_lib.search_ops(channels, tuple(cfg.ops) if cfg.ops else DEFAULT_SEARCH_OPS)
    if not any(n != "identity" for n in names):  # config refuses an identity-only list; here colour ops dropped out
        raise ConfigError(f"search.ops {list(cfg.ops)} leaves nothing to search on {channels}-channel images: colour "
                          "ops drop out for grayscale; add ops that act on it, or leave search.ops null")  # fmt: skip
    return PolicySpace(names, cfg.sub_policies, cfg.ops_per_sub_policy, cfg.per_op_probability, cfg.p_none)


def check_sizes(cfg: SearchConfig, subset_size: int, pool_size: int) -> None:
    """Refused before any fit: a batch larger than the search subset, and density images the validation sample
    cannot supply (the sample is at most the seed validation pool)."""
    refuse_batch_over_set(cfg.child.batch_size, f"search.child.batch_size={cfg.child.batch_size}", subset_size,
                          f"the search subset ({subset_size} images, ingest.train_set_size)")  # fmt: skip
    if cfg.reward == "density" and cfg.child.density_images > pool_size:
        raise ConfigError(
            f"search.child.density_images={cfg.child.density_images} exceeds the seed validation pool ({pool_size} "
            "images: the training split less ingest.train_set_size), of which density scores a part"
        )


def validation_overlap(cfg: SearchConfig, pool_size: int) -> str | None:
    """What to tell the user when the seeds' disjoint validation samples cannot all fit in the pool (they then wrap
    round it and share images, an error common to those seeds that their spread does not show)."""
    size, seeds = cfg.child.validation_sample_size, cfg.n_seeds
    if cfg.child.validation_samples != "disjoint" or seeds * min(size, pool_size) <= pool_size:
        return None
    apart = pool_size // seeds
    remedy = (f"search.child.validation_sample_size: {apart} keeps them apart." if apart >= MIN_VALIDATION_SAMPLE else
              "The pool is too small to part: search.child.validation_samples: overlapping draws each seed's sample "
              "from all of it.")  # fmt: skip
    return (f"The seed validation pool holds {pool_size} images, fewer than {seeds} seeds (noise_seeds + reevaluate_seeds) "
            f"× search.child.validation_sample_size={size}: the seeds' validation samples overlap, and the spread "
            f"between seeds understates the validation noise. {remedy}")  # fmt: skip


def log_config(cfg: SearchConfig, seed: int, data_summary: dict, data_hash: str) -> dict:
    """What the trial log's fingerprint covers: anything that changes a fit's result, the data's content included
    (which also covers the ingest settings that made the subset and the pool)."""
    return canonical_search_config({
        "seed": seed,
        "search": cfg.model_dump(),
        "data": {**{k: data_summary[k] for k in ("image_shape", "n_classes", "sizes")}, "content": data_hash},
    })  # fmt: skip


def run_search(
    subset: LabelledImages,
    pool: LabelledImages,
    data_summary: dict,
    store: TrialLogStore,
    cfg: SearchConfig,
    seed: int,
    tracking: TrackingTarget | None = None,
) -> SearchResult:
    """Resume or start the search: baseline, policy trials, re-evaluation."""
    check_sizes(cfg, len(subset), len(pool))
    overlap = validation_overlap(cfg, len(pool))
    if overlap:
        log.warning("%s", overlap)
    for warning in cfg.warnings:
        log.warning("%s", warning)
    space = policy_space(cfg, int(subset.x.shape[-1]))
    data_hash = data_fingerprint(subset, pool)
    config = log_config(cfg, seed, data_summary, data_hash)
    with store.open(cfg.trial_log_name, config, cfg.fresh_start, canonical=canonical_search_config) as trial_log:
        if trial_log.archived:
            log.warning("Started a fresh search; the previous trial log is kept as %s", trial_log.archived)
        spec = RunnerSpec(cfg.child, data_summary["n_classes"], seed, space.op_indices(), data_hash, cfg.n_seeds)
        if cfg.executor == "local":
            executor = LocalExecutor(subset, pool, spec)
        else:
            executor = DaskExecutor(subset, pool, spec, cfg.address, cfg.n_workers, cfg.threads_per_worker)
        try:
            return SearchLoop(space, cfg, seed, trial_log, executor, TrialTracker(tracking, trial_log.identity), grid_images=subset.x[:6]).run()
        finally:
            executor.close()
