"""Figures of one real search from its trial log: stage times, policies scored per minute, the spread of the search
rewards against the base, and the re-evaluated paired gains (with Spearman ρ between each trial's search reward and
its re-evaluated gain). Run a search first, e.g. `kedro run --pipelines=search --params=search.reward=density`, then:

    python benchmarks/summarise_search_log.py data/07_model_output/trial_logs/bayesian-density.jsonl <name> [<reevaluate_seeds>]

It writes benchmarks/results/<name>.json. Gzipped logs (.jsonl.gz) are read too. The log does not record
search.reevaluate_seeds (it changes no fit), which tells a candidate stopped early: give it if the search did not run
the default.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).parents[1]))  # run as a script: the repository root, for ``benchmarks``
from benchmarks.common import RESULTS, machine  # noqa: E402
from deepaug_pipeline.augment.policy import Policy  # noqa: E402
from deepaug_pipeline.run_log import read_log  # noqa: E402
from deepaug_pipeline.search.noise import paired_gain  # noqa: E402
from deepaug_pipeline.config import SearchConfig, canonical_search_config  # noqa: E402


def load(path: Path) -> tuple[dict, list[dict]]:
    if path.suffix != ".gz":
        return read_log(path)
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as tmp:
        tmp.write(gzip.decompress(path.read_bytes()))
        tmp.flush()
        return read_log(tmp.name)


def summarise(header: dict, records: list[dict], reevaluate_seeds: int = SearchConfig().reevaluate_seeds) -> dict:
    search = canonical_search_config(header["config"])["search"]  # a log of any version, in today's form
    child = search["child"]
    by_key = {r["key"]: r for r in records}
    trials = sorted((r for r in records if r["stage"] == "search" and r["status"] == "ok"), key=lambda r: r["trial_id"])
    rewards = np.array([t["reward"] for t in trials])
    span = max(t["finished_at"] for t in trials) - min(t["started_at"] for t in trials)
    stages = {}
    for r in records:
        s = stages.setdefault(r["stage"], {"fits": 0, "fit_seconds": 0.0})
        s["fits"] += 1
        s["fit_seconds"] = round(s["fit_seconds"] + r["wall_seconds"], 1)
    reference = by_key.get("reference/density")
    base = {r["seed_index"]: r["reward"] for r in records if r["key"].startswith("reevaluate/base/")}
    reevaluated = []
    for t in sorted(trials, key=lambda t: -t["reward"]):
        # A candidate the re-evaluation stopped early ran fewer seeds than configured (as the base did, once every
        # candidate had stopped): paired over the seeds it ran.
        ran = {s: by_key[k]["reward"] for s in base if (k := f"reevaluate/{t['trial_id']}/s{s}") in by_key}
        if not ran:
            continue
        pair = paired_gain(t["trial_id"], ran, base)
        reevaluated.append({
            "trial_id": t["trial_id"], "search_reward": t["reward"], "search_gain": t["gain"], "seeds": sorted(ran),
            "paired_gains": list(pair.gains), "mean": pair.mean, "se": pair.se, "stopped_early": len(ran) < reevaluate_seeds,
            "policy": Policy.from_dict(t["policy"]).describe(),
        })  # fmt: skip
    rho = spearmanr([r["search_reward"] for r in reevaluated], [r["mean"] for r in reevaluated]) if len(reevaluated) > 2 else None
    return {
        "reevaluate_seeds": reevaluate_seeds,
        # A retrain log leaves the density keys out of its config (they change no fit): reward is retrain then.
        "config": {"reward": search.get("reward", "retrain"), "method": search.get("method"), "model": child.get("model"),
                   "child_epochs": child.get("epochs"), "base_augmentation": search.get("base_augmentation"),
                   "density_images": child.get("density_images"), "density_draws": child.get("density_draws")},  # fmt: skip
        "whole_log_seconds": round(max(r["finished_at"] for r in records) - min(r["started_at"] for r in records), 1),
        "stages": stages,
        "search_trials": len(trials),
        "search_stage_seconds": round(span, 1),
        "policies_per_minute": round(len(trials) / (span / 60), 1),
        "search_reward": {"min": float(rewards.min()), "median": float(np.median(rewards)), "max": float(rewards.max()),
                          "best_within_first_quarter": float(rewards[: max(1, len(rewards) // 4)].max())},  # fmt: skip
        "density_reference": reference and {"reward": reference["reward"], "per_child": reference["history"]["density_accuracy"]},
        "base_rewards": {k: r["reward"] for k, r in by_key.items() if r["stage"] == "baseline"},
        "reevaluated": reevaluated,
        "spearman_search_reward_vs_paired_gain": rho and {"rho": float(rho.statistic), "p": float(rho.pvalue), "n": len(reevaluated)},
    }


if __name__ == "__main__":
    header, records = load(Path(sys.argv[1]))
    out = {"machine": machine(), "log": sys.argv[1], **summarise(header, records, *map(int, sys.argv[3:4]))}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{sys.argv[2]}.json").write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k not in ("base_rewards", "reevaluated")}, indent=2))
