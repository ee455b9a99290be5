"""Trials per hour: `local` against `dask` with 2 workers × 1 thread, same config, same machine, same run.

Run by hand: ``python benchmarks/bench_dask.py [--trials N] [--repeats R] [--epochs E] [--base B]`` →
``benchmarks/results/dask.json``. Each repeat runs a fresh search of ``trials`` policy trials (+ the base's noise-seed
fits, no re-evaluation) per executor, interleaved. ``--epochs`` shortens the default child's schedule (the model,
batch and images stay the default's, so the per-step cost and the two executors' ratio are the default's; each
process's start-up weighs more), and ``--base`` fixes the base so the search is not mostly the base choice.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_fashion_subset, median, write_results  # noqa: E402

from deepaug_pipeline.config import IngestConfig, SearchConfig  # noqa: E402
from deepaug_pipeline.run_log import TrialLogStore  # noqa: E402
from deepaug_pipeline.search.run import run_search  # noqa: E402

EXECUTORS = {
    "local": {"executor": "local"},
    "dask_2x1": {"executor": "dask", "n_workers": 2, "threads_per_worker": 1},
}


def main(trials: int = 10, repeats: int = 2, epochs: int | None = None, base: str = "auto") -> None:
    ingest = IngestConfig()
    splits = load_fashion_subset(ingest.train_set_size)
    summary = splits.summary()
    seconds: dict[str, list[float]] = {name: [] for name in EXECUTORS}
    fit_seconds: dict[str, list[float]] = {name: [] for name in EXECUTORS}
    for r in range(repeats):
        for name, extra in EXECUTORS.items():
            child = {} if epochs is None else {"epochs": epochs}
            cfg = SearchConfig(iterations=trials, track_sample_grids=False, reevaluate_top=0, base_augmentation=base,
                               child=child, **extra)  # fmt: skip
            tmp = Path(tempfile.mkdtemp())
            start = time.perf_counter()
            result = run_search(splits.search_subset, splits.seed_validation_pool, summary, TrialLogStore(tmp), cfg, 100 + r)
            seconds[name].append(time.perf_counter() - start)
            fits = len(result.records)
            fit_seconds[name].append(sum(r.wall_seconds for r in result.records))
            shutil.rmtree(tmp)
    per_hour = {name: 3600 * fits / median(s) for name, s in seconds.items()}
    write_results(
        "dask",
        {
            "child": cfg.child.model_dump(include={"model", "epochs", "batch_size"}),
            "base_augmentation": base,
            "fits_per_search": fits,
            "repeats": repeats,
            "seconds_per_search": seconds,
            "fit_seconds_per_search": fit_seconds,
            "fits_per_hour_median": per_hour,
            "dask_over_local": per_hour["dask_2x1"] / per_hour["local"],
            "note": "seconds_per_search include start-up (model build and trace; for dask also cluster start, each "
                    "worker's TensorFlow import and data scatter); fit_seconds sum each fit's own wall time, so under "
                    "dask two fits that overlap both count in full",
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="the child's epochs (default: the search default)")
    parser.add_argument("--base", default="auto", choices=["auto", "standard", "crop", "none"])
    args = parser.parse_args()
    main(args.trials, args.repeats, args.epochs, args.base)
