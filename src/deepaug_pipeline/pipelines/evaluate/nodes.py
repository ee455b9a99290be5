"""Evaluate nodes: thin wrappers over ``deepaug_pipeline.evaluate``, imported when a node runs (see
``deepaug_pipeline.pipelines``)."""

from __future__ import annotations

import functools
from datetime import datetime, timezone

import pandas as pd

from deepaug_pipeline.config import EvaluateConfig, canonical_evaluation_config, parse_config
from deepaug_pipeline.data import LabelledImages
from deepaug_pipeline.evaluate.records import EvaluationRun
from deepaug_pipeline.pipelines import Figure
from deepaug_pipeline.run_log import TrialLogStore
from deepaug_pipeline.search.tracking import log_evaluation_runs, tag_active_run


def evaluate_strategies(
    train_set: LabelledImages,
    test_set: LabelledImages,
    dataset_summary: dict,
    best_policy: dict,
    evaluation_logs: TrialLogStore,
    evaluate: dict,
    seed: int,
) -> list[EvaluationRun]:
    """Train the final model for every strategy × seed (resuming logged runs); score each on the test split (or the
    stratified sample of it that ``test_size`` asks for)."""
    from deepaug_pipeline.augment.policy import Policy
    from deepaug_pipeline.evaluate.final import FinalTrainer, final_splits, run_grid, scoring_sample
    from deepaug_pipeline.evaluate.strategies import found_base, policy_identity, reusable_runs, strategy_aliases
    from deepaug_pipeline.search.results import check_current
    from deepaug_pipeline.data import data_fingerprint

    cfg = parse_config(EvaluateConfig, evaluate, "evaluate")
    # dataset_summary's content is the search subset and pool that ingest wrote with train_set (every ingest that
    # writes train_set records it)
    check_current(best_policy, "best_policy.json", dataset_summary["content"])
    found = Policy.from_dict(best_policy)
    train, val = final_splits(train_set, dataset_summary["class_names"], cfg, seed)
    test = scoring_sample(test_set, dataset_summary["class_names"], cfg, seed)
    scored = cfg if test is not test_set else cfg.model_copy(update={"test_size": None})  # a size ≥ the split is all of it
    config = {"seed": seed, "evaluate": scored.result_defining(), "found_policy": policy_identity(found),
              "data": {**{k: dataset_summary[k] for k in ("image_shape", "n_classes")},
                       "sizes": {"train": len(train_set), "test": len(test_set)},  # not the search's split of TRAIN
                       "content": data_fingerprint(train, val, test)}}  # fmt: skip
    n_classes = dataset_summary["n_classes"]
    base = found_base(found)
    # Built at the first run to train: a fully resumed evaluation builds no model (cfg.seeds WRN-28-10s on a GPU).
    trainer = functools.cache(lambda: FinalTrainer(train, val, test, n_classes, found, cfg, seed, base))
    with evaluation_logs.open("evaluate", config, cfg.fresh_start, section="evaluate", canonical=canonical_evaluation_config,
                              reusable=reusable_runs) as run_log:  # fmt: skip
        runs = run_grid(cfg, run_log, lambda strategy, seed_index: trainer().run(strategy, seed_index), strategy_aliases(base, found))
    log_evaluation_runs(runs)
    return runs


def summarise_evaluation(evaluation_runs: list[EvaluationRun], best_policy: dict, evaluate: dict) -> tuple[pd.DataFrame, dict]:
    """The comparison table, and its numbers as MLflow metrics."""
    from deepaug_pipeline.augment.policy import Policy
    from deepaug_pipeline.evaluate.results import results_table

    strategies = parse_config(EvaluateConfig, evaluate, "evaluate").strategies
    table = results_table(evaluation_runs, strategies, Policy.from_dict(best_policy))
    metrics = {}
    for row in table.to_dict("records"):
        key = row["strategy"].replace("+", "_plus_")
        for col in ("test_accuracy_mean", "test_accuracy_std", "test_error_mean", "error_reduction_vs_none", "error_reduction_vs_standard"):
            if pd.notna(row.get(col)):
                metrics[f"{key}.{col}"] = {"value": float(row[col]), "step": 0}
    return table, metrics


def write_report(
    evaluation_table: pd.DataFrame,
    evaluation_runs: list[EvaluationRun],
    best_policy: dict,
    trials_table: pd.DataFrame,
    train_set: LabelledImages,
    dataset_summary: dict,
    evaluate: dict,
    seed: int,
) -> tuple[str, str, Figure, Figure]:
    """report.md, a self-contained report.html, the test-error dot plot and the learning curves."""
    import matplotlib.pyplot as plt

    from deepaug_pipeline.augment.grid import sample_grid
    from deepaug_pipeline.augment.policy import Policy
    from deepaug_pipeline.evaluate.report import (
        build_report,
        convergence_from_trials,
        error_dot_plot,
        learning_curves,
        report_header,
    )
    from deepaug_pipeline.search.results import search_config

    policy = Policy.from_dict(best_policy)
    figures = {
        "results": error_dot_plot(evaluation_table, evaluation_runs),
        "curves": learning_curves(evaluation_runs, dict(zip(evaluation_table["strategy"], evaluation_table["label"]))),
        "policy_grid": sample_grid(policy, train_set.x, max_images=8),
        "convergence": convergence_from_trials(trials_table),
    }
    # The search as it ran (its trial log's header), not this run's search parameters: another --env or --params
    # at evaluate time changes nothing the policy was found under.
    config = {"seed": seed, "evaluate": parse_config(EvaluateConfig, evaluate, "evaluate").model_dump(),
              "search": search_config(best_policy)}  # fmt: skip
    search_run = policy.metadata.get("mlflow_run_id")
    evaluate_run = tag_active_run({"search_run_id": search_run} if search_run else {})
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = report_header(dataset_summary, config, search_run, evaluate_run, date)
    md, page = build_report(evaluation_table, evaluation_runs, policy, figures, config, header)
    plt.close(figures["policy_grid"])
    plt.close(figures["convergence"])
    return md, page, figures["results"], figures["curves"]
