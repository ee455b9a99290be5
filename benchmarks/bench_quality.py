"""What the found policy is worth: reduced Fashion-MNIST (4000 training images, AutoAugment's "reduced" protocol).

Run by hand: ``python benchmarks/bench_quality.py [search_trials] [seeds]`` → ``benchmarks/results/quality.json``.
Search on the 4000-image subset, then train the evaluate pipeline's final model on those 4000 images for every
strategy with ≥ 3 seeds and score it on the 10k test split. Target (issue 6): ``standard + found`` has a lower mean
test error than TrivialAugment-Wide and RandAugment, and at least 20% lower error than ``none``.
Logs (search trials, evaluation runs) go to benchmarks/results/quality_logs/, so an interrupted run resumes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, load_fashion_subset, write_results  # noqa: E402

from deepaug_pipeline.augment.policy import Policy  # noqa: E402
from deepaug_pipeline.config import EvaluateConfig, IngestConfig, SearchConfig  # noqa: E402
from deepaug_pipeline.evaluate import results_table, run_grid, train_and_score  # noqa: E402
from deepaug_pipeline.ingest import LabelledImages  # noqa: E402
from deepaug_pipeline.search.results import best_combined_policy  # noqa: E402
from deepaug_pipeline.search.run import run_search  # noqa: E402
from deepaug_pipeline.search.trial_log import TrialLogStore  # noqa: E402

SEED = 7


def main(search_trials: int = 40, seeds: int = 3) -> None:
    ingest = IngestConfig(train_set_size=4000, validation_sample_size=1000)
    splits = load_fashion_subset(ingest.train_set_size, ingest.validation_sample_size, SEED)
    store = TrialLogStore(RESULTS / "quality_logs")
    start = time.perf_counter()
    trials = run_search(splits.search_subset, splits.seed_validation_pool, splits.summary(), store,
                        SearchConfig(iterations=search_trials, progress=False, track_sample_grids=False), ingest, SEED)  # fmt: skip
    search_s = time.perf_counter() - start
    found = Policy.from_dict(best_combined_policy(trials, 5))
    cfg = EvaluateConfig(seeds=seeds, train_size=None, validation_size=1000)
    # Train on the same 4000 images the search used; learning curves on a pool sample; score on the 10k test split.
    train = splits.search_subset
    pool, n_val = splits.seed_validation_pool, cfg.validation_size
    val = LabelledImages(pool.x[:n_val], pool.y[:n_val])
    run_log = store.open("evaluate", {"seed": SEED, "evaluate": cfg.result_defining(), "policy": found.to_dict()}, section="evaluate")
    start = time.perf_counter()
    n_classes = len(splits.class_names)
    runs = run_grid(cfg, run_log, lambda s, i: train_and_score(s, i, train, val, splits.test, n_classes, found, cfg, SEED))
    table = results_table(runs, cfg.strategies).set_index("strategy")
    err = table["test_error_mean"]
    write_results(
        "quality",
        {
            "protocol": "Fashion-MNIST, 4000 training images, search on them, final model on them, 10k test",
            "search_trials": search_trials,
            "search_seconds_this_process": search_s,  # small when the search resumed from its log
            "search_trial_seconds_sum": sum(t["wall_seconds"] for t in trials),
            "evaluate_seconds_this_process": time.perf_counter() - start,
            "evaluate_run_seconds_sum": sum(r["wall_seconds"] for r in runs),
            "found_policy": found.to_dict(),
            "final_model": cfg.model,
            "epochs": cfg.epochs,
            "table": table.reset_index().to_dict("records"),
            "targets": {
                "found_beats_trivialaugment": bool(err["standard+found"] < err["standard+trivialaugment"]),
                "found_beats_randaugment": bool(err["standard+found"] < err["standard+randaugment"]),
                "found_at_least_20pct_less_error_than_none": bool(table.loc["standard+found", "error_reduction_vs_none"] >= 0.2),
            },
        },
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
