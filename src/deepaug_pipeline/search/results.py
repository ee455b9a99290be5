"""Search outputs from the trial records: trial table, top-k policies, combined best policy, convergence plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from deepaug_pipeline.augment.policy import SCHEMA_VERSION, Policy  # noqa: E402


def trials_table(trials: list[dict]) -> pd.DataFrame:
    """One row per trial: id, status, reward, gain over the baseline, timing, and the policy."""
    rows = []
    for t in sorted(trials, key=lambda t: t["trial_id"]):
        policy = Policy.from_dict(t["policy"])
        rows.append(
            {
                "trial_id": t["trial_id"],
                "method": t.get("method"),
                "status": t["status"],
                "reward": t["reward"],
                "gain_over_baseline": t.get("gain"),
                "fallback_epochs": t.get("fallback", False),
                "wall_seconds": round(t.get("wall_seconds", float("nan")), 3),
                "policy": "no augmentation" if t["trial_id"] == 0 else " | ".join(policy.describe()),
                "reason": t.get("reason"),
            }
        )
    return pd.DataFrame(rows)


def ranked_policy_trials(trials: list[dict]) -> list[dict]:
    """Finished policy trials (not the baseline), best reward first; ties keep the earlier trial."""
    ok = [t for t in trials if t["status"] == "ok" and t["trial_id"] != 0]
    return sorted(ok, key=lambda t: (-t["reward"], t["trial_id"]))


def top_policies(trials: list[dict], k: int) -> dict:
    """The top-k policies as JSON (``Policy.load(path, rank=i)`` reads entry i)."""
    entries = [
        {
            "rank": rank,
            "trial_id": t["trial_id"],
            "reward": t["reward"],
            "gain_over_baseline": t.get("gain"),
            "policy": t["policy"],
        }
        for rank, t in enumerate(ranked_policy_trials(trials)[:k])
    ]
    return {"schema_version": SCHEMA_VERSION, "policies": entries}


def top_policies_table(top: dict) -> pd.DataFrame:
    """The top-k policies for people: one row per policy, one column per sub-policy."""
    rows = []
    for entry in top["policies"]:
        policy = Policy.from_dict(entry["policy"])
        row = {k: entry[k] for k in ("rank", "trial_id", "reward", "gain_over_baseline")}
        row.update({f"sub_policy_{i + 1}": d for i, d in enumerate(policy.describe())})
        rows.append(row)
    return pd.DataFrame(rows)


def best_combined_policy(trials: list[dict], combine_top: int) -> dict:
    """AutoAugment's final policy: the sub-policies of the best ``combine_top`` policies, concatenated."""
    ranked = ranked_policy_trials(trials)[:combine_top]
    if not ranked:
        raise ValueError("no successful policy trial: nothing to combine (see the trial table's 'reason' column)")
    combined = Policy.combine(Policy.from_dict(t["policy"]) for t in ranked)
    meta = {
        "source": "search",
        "trial_ids": [t["trial_id"] for t in ranked],
        "rewards": [t["reward"] for t in ranked],
        "baseline_reward": next((t["reward"] for t in trials if t["trial_id"] == 0), None),
    }
    return Policy(combined.sub_policies, combined.p_none, meta).to_dict()


def best_so_far(trials: list[dict]) -> np.ndarray:
    """Best reward among policy trials 1..n, for n = 1..N (failed trials count as 0)."""
    rewards = [t["reward"] for t in sorted(trials, key=lambda t: t["trial_id"]) if t["trial_id"] != 0]
    return np.maximum.accumulate(np.asarray(rewards, np.float64)) if rewards else np.zeros(0)


def convergence_figure(runs: dict[str, list[dict]]) -> plt.Figure:
    """Best reward against trial number, one line per method (bayesian and random overlaid when both exist)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    baseline = None
    for method, trials in sorted(runs.items()):
        curve = best_so_far(trials)
        ax.plot(np.arange(1, len(curve) + 1), curve, marker=".", label=f"{method} search")
        baseline = baseline or next((t["reward"] for t in trials if t["trial_id"] == 0), None)
    if baseline is not None:
        ax.axhline(baseline, color="gray", linestyle="--", label="no augmentation (trial 0)")
    ax.set_xlabel("trial")
    ax.set_ylabel("best reward so far (validation accuracy)")
    ax.set_title("Search convergence")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
