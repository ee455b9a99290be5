"""Bayesian vs random search at an equal trial budget, several search seeds, on Fashion-MNIST.

Run by hand: ``python benchmarks/bench_search.py [trials] [seeds]`` → ``benchmarks/results/search.json``.
Target (issue 5): Bayesian search reaches random search's final best reward in at most half the trials
(median over seeds). Trial logs go to benchmarks/results/search_logs/, so an interrupted run resumes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, load_fashion_subset, median, np, write_results  # noqa: E402

from deepaug_pipeline.config import IngestConfig, SearchConfig  # noqa: E402
from deepaug_pipeline.search.results import best_so_far  # noqa: E402
from deepaug_pipeline.search.run import run_search  # noqa: E402
from deepaug_pipeline.search.trial_log import TrialLogStore  # noqa: E402


def main(trials: int = 24, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    ingest = IngestConfig()
    out: dict = {"trials_per_search": trials, "seeds": list(seeds), "runs": {}}
    halves = []
    for seed in seeds:
        splits = load_fashion_subset(ingest.train_set_size, ingest.validation_sample_size, seed)
        summary = splits.summary()
        curves = {}
        for method in ("bayesian", "random"):
            cfg = SearchConfig(method=method, iterations=trials, progress=False, track_sample_grids=False)
            store = TrialLogStore(RESULTS / "search_logs" / f"seed{seed}")
            start = time.perf_counter()
            records = run_search(splits.search_subset, splits.seed_validation_pool, summary, store, cfg, ingest, seed)
            curves[method] = best_so_far(records)
            out["runs"][f"seed{seed}/{method}"] = {
                "baseline_reward": records[0]["reward"],
                "best_so_far": curves[method].tolist(),
                "final_best": float(curves[method][-1]),
                "seconds": time.perf_counter() - start,
            }
        target = curves["random"][-1]
        reached = np.flatnonzero(curves["bayesian"] >= target)
        first = int(reached[0]) + 1 if len(reached) else None  # trials Bayesian needs to match random's final best
        out["runs"][f"seed{seed}/trials_for_bayesian_to_reach_random_final"] = first
        halves.append(first / trials if first is not None else float("inf"))
    out["median_fraction_of_budget"] = median(halves)
    out["target_met"] = out["median_fraction_of_budget"] <= 0.5
    out["mean_final_best"] = {
        m: float(np.mean([out["runs"][f"seed{s}/{m}"]["final_best"] for s in seeds])) for m in ("bayesian", "random")
    }
    write_results("search", out)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 24
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    main(n, tuple(range(1, k + 1)))
