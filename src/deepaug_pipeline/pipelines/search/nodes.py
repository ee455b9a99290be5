"""Search nodes: thin wrappers over ``deepaug_pipeline.search``, imported when a node runs (see
``deepaug_pipeline.pipelines``)."""

from __future__ import annotations

import pandas as pd

from deepaug_pipeline.config import SearchConfig, canonical_search_config, parse_config
from deepaug_pipeline.data import LabelledImages
from deepaug_pipeline.pipelines import Figure
from deepaug_pipeline.run_log import TrialLogStore
from deepaug_pipeline.search.records import SearchResult, TrialRecord
from deepaug_pipeline.search.tracking import TrackingTarget, log_missing_params


def search_policies(
    search_subset: LabelledImages,
    seed_validation_pool: LabelledImages,
    dataset_summary: dict,
    trial_logs: TrialLogStore,
    search: dict,
    seed: int,
) -> SearchResult:
    """Run (or resume) the search; every fit is in the trial log as soon as it ends."""
    from deepaug_pipeline.search.run import run_search

    log_missing_params(dataset_summary.get("made_from") or {})  # the ingest settings, when ingest was left out
    result = run_search(
        search_subset,
        seed_validation_pool,
        dataset_summary,
        trial_logs,
        parse_config(SearchConfig, search, "search"),
        seed,
        TrackingTarget.from_active_run(),
    )
    return result


def summarise_trials(trials: SearchResult, search: dict) -> tuple[pd.DataFrame, dict, pd.DataFrame, dict, dict]:
    """Trial table, top-k policies (JSON and CSV), the combined best policy, and the search's metrics (MLflow)."""
    from deepaug_pipeline.search import results

    cfg = parse_config(SearchConfig, search, "search")
    top = results.top_policies(trials, cfg.top_k)
    metrics = {name: {"value": value, "step": 0} for name, value in results.search_metrics(trials).items()}
    return (results.trials_table(trials), top, results.top_policies_table(top),
            results.best_combined_policy(trials, cfg.combine_top), metrics)  # fmt: skip


def plot_convergence(
    trials_table: pd.DataFrame,
    trial_logs: TrialLogStore,
    search_subset: LabelledImages,
    seed_validation_pool: LabelledImages,
    dataset_summary: dict,
    search: dict,
    seed: int,
) -> Figure:
    """Trial rewards and the best so far, with the other search method overlaid when its log exists."""
    from deepaug_pipeline.search import results
    from deepaug_pipeline.data import data_fingerprint
    from deepaug_pipeline.search.run import log_config

    cfg = parse_config(SearchConfig, search, "search")
    data_hash = data_fingerprint(search_subset, seed_validation_pool)
    config = log_config(cfg, seed, dataset_summary, data_hash)
    config["search"] = {k: v for k, v in config["search"].items() if k != "method"}
    tables = {
        method: results.records_table([TrialRecord.from_json(t) for t in records])
        for method, records in trial_logs.comparable_runs(config, canonical_search_config).items()
    }
    tables[cfg.method] = trials_table
    return results.convergence_figure(tables)


def plot_best_policy(best_policy: dict, search_subset: LabelledImages) -> Figure:
    """Sample grid of the combined best policy on real images."""
    from deepaug_pipeline.augment.grid import sample_grid
    from deepaug_pipeline.augment.policy import Policy

    return sample_grid(Policy.from_dict(best_policy), search_subset.x, max_images=8)
