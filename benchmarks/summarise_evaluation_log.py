"""Figures of one real evaluation from its run log: each strategy's test accuracy per seed and run time, and each
strategy's paired gain in accuracy over a reference strategy (the same seeds, the library's pairing), in points
with its standard error. Run an evaluation first (`kedro run --pipelines=evaluate`), then:

    python benchmarks/summarise_evaluation_log.py data/07_model_output/evaluation_logs/evaluation.jsonl <name> [reference]

``reference`` defaults to ``standard``. It writes benchmarks/results/<name>.json. Gzipped logs (.jsonl.gz) are read
too.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # run as a script: the repository root, for ``benchmarks``
from benchmarks.common import write_results  # noqa: E402
from benchmarks.summarise_search_log import load  # noqa: E402
from deepaug_pipeline.evaluate.records import EvaluationRun  # noqa: E402
from deepaug_pipeline.evaluate.results import paired_error_difference  # noqa: E402
from deepaug_pipeline.search.noise import ACCEPT_SE  # noqa: E402


def summarise(header: dict, records: list[dict], reference: str = "standard") -> dict:
    runs = [EvaluationRun.from_json(r) for r in records]
    strategies = list(dict.fromkeys(r.strategy for r in runs))
    if reference not in strategies:
        raise SystemExit(f"the log has no runs of the reference strategy {reference!r}; it has {', '.join(strategies)}")
    gains = {}
    for strategy in (s for s in strategies if s != reference):
        # The reference's error minus the strategy's: the strategy's gain in accuracy on the same seed.
        pair = paired_error_difference(runs, reference, strategy)
        gains[strategy] = {"paired_gain_points": [round(100 * g, 2) for g in pair.gains], "mean_points": round(100 * pair.mean, 3),
                           "se_points": round(100 * pair.se, 3), "z": round(pair.z, 2), f"beyond_{ACCEPT_SE:g}_se": pair.z > ACCEPT_SE}  # fmt: skip
    return {
        "evaluate": header["config"].get("evaluate"),
        "test_accuracy": {s: {r.seed_index: r.test_accuracy for r in runs if r.strategy == s and r.ok} for s in strategies},
        "run_seconds": {f"{r.strategy}/{r.seed_index}": round(r.wall_seconds, 1) for r in runs},
        "failed": [f"{r.strategy}/{r.seed_index}" for r in runs if not r.ok],
        "reference": reference,
        "gain_over_reference": gains,
    }


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    header, records = load(Path(sys.argv[1]))
    write_results(sys.argv[2], {"log": sys.argv[1], **summarise(header, records, *sys.argv[3:])})
