"""What the found policy is worth: reduced Fashion-MNIST (see quality_protocol.py).

Run by hand: ``python benchmarks/bench_quality.py [seeds] [best_policy.json]`` → ``benchmarks/results/quality.json``.
The default search (base measured under noise seeds, policy trials, paired re-evaluation) on the protocol's images,
or the policy a search already found (its ``best_policy.json``, e.g. from the README's default search on the embedded
Fashion-MNIST: that search saw 1000 other images of the same training split), then the evaluate default (WRN-10-1,
120 epochs) for every strategy with ≥ 3 seeds on the 10k test split. Targets (issue 12): standard + found
has lower error than standard beyond 2 SE of the difference; it is no worse than + RandAugment and
+ TrivialAugment-Wide; stretch: it beats TrivialAugment-Wide beyond 2 SE and has ≥ 30% less error than none.
Cost on 2 CPU cores: a search fit ≈ 2.5 min and a final run ≈ 14 min on the slower machine of issue 12's session,
so budget a day; everything resumes from benchmarks/results/quality_logs/.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import quality_protocol as qp  # noqa: E402
from common import write_results  # noqa: E402

from deepaug_pipeline.augment.policy import Policy  # noqa: E402
from deepaug_pipeline.config import EvaluateConfig, SearchConfig  # noqa: E402
from deepaug_pipeline.evaluate.report import beyond_seed_noise, verdict  # noqa: E402
from deepaug_pipeline.evaluate.results import paired_error_difference, results_table  # noqa: E402
from deepaug_pipeline.search import results  # noqa: E402


def _beyond(runs, a: str, b: str) -> dict:
    """a's test error minus b's, paired by seed as the report pairs it, its standard error, and whether a is lower
    beyond seed noise by the report's rule."""
    difference = paired_error_difference(runs, a, b)
    return {"error_difference": difference.mean, "se": difference.se, "paired_seeds": len(difference.gains),
            "lower_beyond_2se": bool(difference.mean < 0 and beyond_seed_noise(difference))}  # fmt: skip


def search_figures(protocol: qp.Protocol) -> tuple[Policy, dict]:
    start = time.perf_counter()
    result = qp.search(protocol, SearchConfig(track_sample_grids=False))
    found = Policy.from_dict(results.best_combined_policy(result, SearchConfig().combine_top))
    return found, {
        "search_seconds_this_process": time.perf_counter() - start,  # small when the search resumed from its log
        "search_fit_seconds_sum": sum(r.wall_seconds for r in result.records),
        "search_fits": len(result.records),
        "verdict": results.verdict(result),
        "base_choice": result.base_choice.describe({}),
    }


def main(seeds: int = 3, found_policy: Path | None = None) -> None:
    protocol = qp.load()
    if found_policy is None:
        found, search = search_figures(protocol)
    else:
        found = Policy.load(found_policy)
        meta = found.metadata
        search = {"found_policy_file": str(found_policy), "verdict": meta.get("verdict"),
                  "base_choice": meta.get("base_choice", {}).get("in_words"), "search_log": meta.get("search_log")}  # fmt: skip
    cfg = EvaluateConfig(seeds=seeds, train_size=None)
    start = time.perf_counter()
    runs = qp.evaluate(protocol, found, cfg)
    table = results_table(runs, cfg.strategies, found).set_index("strategy")
    err = table["test_error_mean"]
    write_results("quality", {
        "protocol": qp.__doc__.split("\n\n")[1],
        **search,
        "evaluate_seconds_this_process": time.perf_counter() - start,
        "evaluate_run_seconds_sum": sum(r.wall_seconds for r in runs if not r.same_as),
        "found_policy": found.to_dict(),
        "final_model": cfg.model, "epochs": cfg.epochs, "seeds": seeds,
        "table": table.reset_index().to_dict("records"),
        "runs": [{"strategy": r.strategy, "seed_index": r.seed_index, "status": r.status, "test_error": r.test_error,
                  "same_as": r.same_as} for r in runs],  # per seed: any comparison can be paired again from the file
        "report_lines": verdict(table.reset_index(), runs),
        "targets": {
            "found_beats_standard_beyond_2se": _beyond(runs, "standard+found", "standard"),
            "found_no_worse_than_randaugment": bool(err["standard+found"] <= err["standard+randaugment"]),
            "found_no_worse_than_trivialaugment": bool(err["standard+found"] <= err["standard+trivialaugment"]),
            "stretch_found_beats_trivialaugment_beyond_2se": _beyond(runs, "standard+found", "standard+trivialaugment"),
            "stretch_found_30pct_less_error_than_none": bool(table.loc["standard+found", "error_reduction_vs_none"] >= 0.3),
        },
    })  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3, Path(sys.argv[2]) if len(sys.argv) > 2 else None)
