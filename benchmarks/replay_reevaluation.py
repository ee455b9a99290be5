"""What ``search.reevaluate_stop_early`` saves on real searches, measured without training: each committed default
search log (its re-evaluation ran every candidate on every fresh seed) is resumed by today's search loop from its
baseline and trial records, and the re-evaluation fits the loop asks for are served from the log, so they are the
fits that really ran, with their rewards and wall times. The fits it never asks for are what stopping early saves.

    python benchmarks/replay_reevaluation.py

It writes benchmarks/results/reevaluate_stop_early.json: per log, the fits and fit-seconds of the full and the
early-stopped re-evaluation, of the whole search, and whether both accept the same policies. (The density log is
left out: resuming it needs the base's trained children, which are not committed.)
"""

from __future__ import annotations

import sys
import tempfile
from concurrent.futures import Future
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # run as a script: the repository root, for ``benchmarks``
from benchmarks.common import RESULTS, write_results  # noqa: E402
from benchmarks.summarise_search_log import load  # noqa: E402
from deepaug_pipeline.config import SearchConfig, canonical_search_config  # noqa: E402
from deepaug_pipeline.run_log import TrialLog  # noqa: E402
from deepaug_pipeline.search.controller import SearchLoop  # noqa: E402
from deepaug_pipeline.search.records import FitOutcome, FitRequest, TrialRecord  # noqa: E402
from deepaug_pipeline.search.run import policy_space  # noqa: E402

LOGS = ("retrain_default_search", "random_default_search")


class LoggedFits:
    """An executor whose fits are the logged ones: a request gets the record its key has in the log."""

    slots = 1

    def __init__(self, records: dict[str, dict]) -> None:
        self.records = records
        self.asked: list[str] = []

    def submit(self, request: FitRequest) -> Future:
        self.asked.append(request.key)
        record = TrialRecord.from_json(self.records[request.key])
        future: Future = Future()
        future.set_result(FitOutcome(record.status, record.reward, record.history, record.epochs_used, record.fallback,
                                     record.reason, wall_seconds=record.wall_seconds))  # fmt: skip
        return future

    def next_done(self, futures):
        return next(iter(futures))

    def outcome(self, future: Future) -> FitOutcome:
        return future.result()


def replay(name: str) -> dict:
    header, records = load(RESULTS / f"{name}.jsonl.gz")
    config = canonical_search_config(header["config"])
    reevaluation = {r["key"]: r for r in records if r["stage"] == "reevaluate"}
    runs = {}
    for stop_early in (False, True):
        cfg = SearchConfig(**config["search"], reevaluate_stop_early=stop_early)
        with tempfile.TemporaryDirectory() as tmp, TrialLog(Path(tmp) / "log.jsonl", config) as log:
            for record in records:
                if record["stage"] != "reevaluate":
                    log.append(record)
            executor = LoggedFits(reevaluation)
            channels = config["data"]["image_shape"][-1]
            result = SearchLoop(policy_space(cfg, channels), cfg, config["seed"], log, executor).run()
        runs[stop_early] = {
            "fits": len(executor.asked),
            "fit_seconds": round(sum(reevaluation[k]["wall_seconds"] for k in executor.asked), 1),
            "accepted": [p.trial_id for p in result.accepted],
            "paired_seeds": {p.trial_id: len(p.gains) for p in result.reevaluated},
        }
    search_seconds = sum(r["wall_seconds"] for r in records)
    before_reevaluation = search_seconds - sum(r["wall_seconds"] for r in reevaluation.values())
    full, stopped = runs[False], runs[True]
    assert full["fits"] == len(reevaluation), "the full re-evaluation asks for every logged fit"
    return {
        "log": f"benchmarks/results/{name}.jsonl.gz",
        "full_reevaluation": full,
        "stopped_early": stopped,
        "same_policies_accepted": full["accepted"] == stopped["accepted"],
        "whole_search_fits": {"full": len(records), "stopped_early": len(records) - full["fits"] + stopped["fits"]},
        "whole_search_fit_seconds": {"full": round(search_seconds, 1),
                                     "stopped_early": round(before_reevaluation + stopped["fit_seconds"], 1)},  # fmt: skip
        "whole_search_time_ratio": round((before_reevaluation + stopped["fit_seconds"]) / search_seconds, 3),
    }


def main() -> None:
    write_results("reevaluate_stop_early", {"protocol": __doc__, "logs": {name: replay(name) for name in LOGS}})


if __name__ == "__main__":
    main()
