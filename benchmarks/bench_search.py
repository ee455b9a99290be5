"""Bayesian vs random search at an equal budget, judged on the re-evaluated (paired, multi-seed) gain.

Run by hand: ``python benchmarks/bench_search.py [trials] [seeds]`` → ``benchmarks/results/search.json``.
For each search seed, both methods run the default search (same base measurement, ``trials`` policy trials, the
top policies re-evaluated on fresh seeds paired with the base); the comparison is the best mean paired gain ± SE
and how many policies were accepted (beyond 2 SE), not the single noisy reward. The base's fits are the same for
both methods (same seed, same data), so each method's log holds its own copy. Logs go to
benchmarks/results/search_logs/, so an interrupted run resumes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, load_fashion_subset, np, write_results  # noqa: E402

from deepaug_pipeline.config import IngestConfig, SearchConfig  # noqa: E402
from deepaug_pipeline.run_log import TrialLogStore  # noqa: E402
from deepaug_pipeline.search import results  # noqa: E402
from deepaug_pipeline.search.run import run_search  # noqa: E402


def main(trials: int = 20, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    ingest = IngestConfig()
    out: dict = {"trials_per_search": trials, "seeds": list(seeds), "runs": {}}
    for seed in seeds:
        splits = load_fashion_subset(ingest.train_set_size, seed)
        for method in ("bayesian", "random"):
            cfg = SearchConfig(method=method, iterations=trials, track_sample_grids=False)
            start = time.perf_counter()
            result = run_search(splits.search_subset, splits.seed_validation_pool, splits.summary(),
                                TrialLogStore(RESULTS / "search_logs" / f"seed{seed}"), cfg, seed)  # fmt: skip
            best = result.reevaluated[0] if result.reevaluated else None
            out["runs"][f"seed{seed}/{method}"] = {
                "base": result.noise_floor.base,
                "noise_floor_std": result.noise_floor.std,
                "best_single_reward": max((t.reward for t in result.search_trials if t.ok), default=None),
                "best_paired_gain": None if best is None else best.mean,
                "best_paired_gain_se": None if best is None else best.se,
                "accepted": len(result.accepted),
                "verdict": results.verdict(result),
                "fit_seconds_sum": sum(r.wall_seconds for r in result.records),
                "seconds_this_process": time.perf_counter() - start,
            }
    for method in ("bayesian", "random"):
        gains = [out["runs"][f"seed{s}/{method}"]["best_paired_gain"] for s in seeds]
        gains = [g for g in gains if g is not None]
        out[f"{method}_best_paired_gain_mean"] = float(np.mean(gains)) if gains else None
        out[f"{method}_best_paired_gain_se_over_seeds"] = float(np.std(gains, ddof=1) / np.sqrt(len(gains))) if len(gains) > 1 else None
        out[f"{method}_accepted_total"] = sum(out["runs"][f"seed{s}/{method}"]["accepted"] for s in seeds)
    write_results("search", out)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    main(n, tuple(range(1, k + 1)))
