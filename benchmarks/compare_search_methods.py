"""Bayesian against random search at equal budget, judged on the re-evaluated (paired, multi-seed) gain (issue 12).

Run both searches with the same config but ``search.method``, e.g. the README's default search and

    kedro run --pipelines=search --params=search.method=random

then

    python benchmarks/compare_search_methods.py <bayesian log> <random log> <name>

(gzipped logs are read too). It writes benchmarks/results/<name>.json: per method the best single-seed search
reward, each re-evaluated top policy's mean paired gain over the base (± SE over the fresh seeds), their mean (± SE
over the policies), how many beat the
base beyond 2 SE, and the difference between the two methods' best re-evaluated policies with its SE.
One search per method: the comparison says which search found the better policy this time, not which method is
better in general (that would take repeated searches, about an hour each on 2 CPU cores).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))  # run as a script: the repository root, for ``benchmarks``
from benchmarks.common import RESULTS, machine  # noqa: E402
from benchmarks.summarise_search_log import load, summarise  # noqa: E402
from deepaug_pipeline.config import canonical_search_config  # noqa: E402
from deepaug_pipeline.search.noise import paired_gain  # noqa: E402


def method_figures(summary: dict) -> dict:
    reevaluated = summary["reevaluated"]
    means = np.array([r["mean"] for r in reevaluated])
    best = max(reevaluated, key=lambda r: r["mean"])
    return {
        "config": summary["config"],
        "search_trials": summary["search_trials"],
        "whole_log_seconds": summary["whole_log_seconds"],
        "best_search_reward": summary["search_reward"]["max"],
        "best_reevaluated": {k: best[k] for k in ("trial_id", "mean", "se", "seeds", "paired_gains", "policy")},
        "reevaluated_mean_gain": float(means.mean()),
        "reevaluated_mean_gain_se": float(means.std(ddof=1) / np.sqrt(len(means))) if len(means) > 1 else None,
        "beyond_2se": sum(r["se"] > 0 and r["mean"] > 2 * r["se"] for r in reevaluated),
        "reevaluated": [{k: r[k] for k in ("trial_id", "search_reward", "mean", "se")} for r in reevaluated],
        "spearman_search_reward_vs_paired_gain": summary["spearman_search_reward_vs_paired_gain"],
        "baseline_rewards": summary["base_rewards"],
    }


def compare(bayesian: dict, random: dict) -> dict:
    b, r = bayesian["best_reevaluated"], random["best_reevaluated"]
    # Both re-evaluations train on the same fresh seeds (same split, initial weights and validation sample per seed),
    # so the two best policies are compared seed by seed.
    # A policy the re-evaluation stopped early ran fewer seeds: compared over the seeds both ran.
    pair = paired_gain(None, dict(zip(b["seeds"], b["paired_gains"])), dict(zip(r["seeds"], r["paired_gains"])))
    diff, se = pair.mean, pair.se
    return {
        "best_gain_bayesian_minus_random": diff,
        "se": se,
        "z": diff / se if se > 0 else None,
        "bayesian_better_beyond_2se": bool(se > 0 and diff > 2 * se),
        "random_better_beyond_2se": bool(se > 0 and -diff > 2 * se),
        "same_baseline_fits": bayesian["baseline_rewards"] == random["baseline_rewards"],
    }


if __name__ == "__main__":
    figures, configs = {}, {}
    for method, path in zip(("bayesian", "random"), sys.argv[1:3]):
        header, records = load(Path(path))
        found = header["config"]["search"]["method"]
        if found != method:
            sys.exit(f"{path} is a {found} search's log; pass the bayesian log first, then the random one")
        config = canonical_search_config(header["config"])
        configs[method] = {**config, "search": {k: v for k, v in config["search"].items() if k != "method"}}
        figures[method] = {"log": path, **method_figures(summarise(header, records))}
    if configs["bayesian"] != configs["random"]:
        sys.exit("the two searches ran under different configs (data, seed or search keys other than the method)")
    out = {"machine": machine(), **figures, "comparison": compare(figures["bayesian"], figures["random"])}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{sys.argv[3]}.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
