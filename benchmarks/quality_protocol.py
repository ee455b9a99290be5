"""The reduced Fashion-MNIST protocol shared by bench_quality.py and bench_fidelity.py.

4000 stratified training images (AutoAugment's "reduced" size). The search runs with the default config on a
stratified ``train_set_size`` subset of them (the child's training set), validating on the rest of TRAIN; the final
model (the evaluate default) trains on all 4000 and is scored on the 10k test split. Every fit and every final run
is logged under benchmarks/results/quality_logs/ (each log under its images' content and the config), so an
interrupted benchmark resumes; other images or another config are refused, never mixed in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from common import RESULTS, load_fashion_subset

from deepaug_pipeline.augment.policy import Policy
from deepaug_pipeline.config import EvaluateConfig, IngestConfig, SearchConfig, canonical_evaluation_config
from deepaug_pipeline.data import LabelledImages, data_fingerprint
from deepaug_pipeline.evaluate.final import FinalTrainer, run_grid
from deepaug_pipeline.evaluate.records import EvaluationRun
from deepaug_pipeline.evaluate.strategies import found_base, policy_identity, strategy_aliases
from deepaug_pipeline.ingest.split import DatasetSplits, stratified_indices
from deepaug_pipeline.run_log import TrialLogStore
from deepaug_pipeline.search.records import SearchResult
from deepaug_pipeline.search.run import run_search
from deepaug_pipeline.seeding import stream_rng

SEED = 7
TRAIN_IMAGES = 4000
STORE = TrialLogStore(RESULTS / "quality_logs")


@dataclass(frozen=True)
class Protocol:
    splits: DatasetSplits  # search_subset: the 4000 final-model images
    child_subset: LabelledImages  # the search's training set, a stratified part of them
    validation: LabelledImages  # the final model's learning-curve sample (TRAIN, never test)

    @property
    def n_classes(self) -> int:
        return len(self.splits.class_names)


def load(ingest: IngestConfig = IngestConfig()) -> Protocol:
    splits = load_fashion_subset(TRAIN_IMAGES, SEED)
    train = splits.search_subset
    idx, _ = stratified_indices(train.y, splits.class_names, ingest.train_set_size, stream_rng(SEED, "child_subset"), "child subset")
    pool = splits.seed_validation_pool
    return Protocol(splits, LabelledImages(train.x[idx], train.y[idx]), LabelledImages(pool.x[:1000], pool.y[:1000]))


def search(protocol: Protocol, cfg: SearchConfig) -> SearchResult:
    summary = replace(protocol.splits, search_subset=protocol.child_subset).summary()
    return run_search(protocol.child_subset, protocol.splits.seed_validation_pool, summary, STORE, cfg, SEED)


def evaluate(protocol: Protocol, found: Policy, cfg: EvaluateConfig, log_name: str = "evaluate") -> list[EvaluationRun]:
    """The final model per strategy and seed on the 4000 images; ``found`` brings the base the search chose."""
    base = found_base(found)
    s = protocol.splits

    config = {"seed": SEED, "evaluate": cfg.result_defining(), "policy": policy_identity(found),
              "data": data_fingerprint(s.search_subset, protocol.validation, s.test)}  # fmt: skip
    with STORE.open(log_name, config, section="evaluate", canonical=canonical_evaluation_config) as run_log:
        trainer = FinalTrainer(s.search_subset, protocol.validation, s.test, protocol.n_classes, found, cfg, SEED, base)
        return run_grid(cfg, run_log, trainer.run, strategy_aliases(base, found))
