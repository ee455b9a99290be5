"""Trials per hour: `local` against `dask` with 2 workers × 1 thread, same config, same machine, same run.

Run by hand: ``python benchmarks/bench_dask.py [trials] [repeats]`` → ``benchmarks/results/dask.json``.
Each repeat runs a fresh search of ``trials`` policy trials (+ the base's noise-seed fits, no re-evaluation) per
executor, interleaved.
"""

from __future__ import annotations

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


def main(trials: int = 10, repeats: int = 2) -> None:
    ingest = IngestConfig()
    splits = load_fashion_subset(ingest.train_set_size)
    summary = splits.summary()
    seconds: dict[str, list[float]] = {name: [] for name in EXECUTORS}
    for r in range(repeats):
        for name, extra in EXECUTORS.items():
            cfg = SearchConfig(iterations=trials, track_sample_grids=False, reevaluate_top=0, **extra)
            tmp = Path(tempfile.mkdtemp())
            start = time.perf_counter()
            result = run_search(splits.search_subset, splits.seed_validation_pool, summary, TrialLogStore(tmp), cfg, 100 + r)
            seconds[name].append(time.perf_counter() - start)
            fits = len(result.records)
            shutil.rmtree(tmp)
    per_hour = {name: 3600 * fits / median(s) for name, s in seconds.items()}
    write_results(
        "dask",
        {
            "fits_per_search": fits,
            "repeats": repeats,
            "seconds_per_search": seconds,
            "fits_per_hour_median": per_hour,
            "dask_over_local": per_hour["dask_2x1"] / per_hour["local"],
            "note": "both include start-up (model build and trace; for dask also cluster start and data scatter)",
        },
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10, int(sys.argv[2]) if len(sys.argv) > 2 else 2)
