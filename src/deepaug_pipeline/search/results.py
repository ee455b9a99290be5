"""Search outputs from a SearchResult: trial table, top policies (re-evaluated first), the combined best policy,
the verdict in words, and the convergence plot."""

from __future__ import annotations

import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from deepaug_pipeline.augment.baselines import BASE_LABELS  # noqa: E402
from deepaug_pipeline.augment.policy import SCHEMA_VERSION, Policy  # noqa: E402
from deepaug_pipeline.run_log import StaleSearchOutputs, logged_data_content, read_log  # noqa: E402
from deepaug_pipeline.search.noise import ACCEPT_SE, PairedGain  # noqa: E402
from deepaug_pipeline.search.records import SearchResult, TrialRecord, ranked_search_trials  # noqa: E402
from deepaug_pipeline.search.tracking import policy_summary  # noqa: E402


def search_log_stamp(result: SearchResult) -> dict:
    """Which trial log, in which state, the outputs were computed from."""
    return {"path": result.log_path, "fingerprint": result.log_fingerprint, "created": result.log_created, "records": len(result.records)}


def _stamp(best_policy: dict) -> dict | None:
    """The trial-log stamp a search wrote into its best policy (None for a policy from elsewhere)."""
    return (best_policy.get("metadata") or {}).get("search_log") or None


def check_current(best_policy: dict, where: str, data_content: str | None = None) -> None:
    """Refuse a best policy whose trial log has changed since it was written (a later search crashed, failed, or ran
    under another config), or, given the ``data_fingerprint`` of the search subset and pool now on disk, one whose
    search ran on other data (ingest re-ran with other settings or another source): evaluating it would silently mix
    two searches, or a search with data it never saw. Policies from elsewhere pass."""
    stamp = _stamp(best_policy)
    if not stamp:
        return
    path = Path(stamp["path"])
    rerun = "Run the search again (same config) to bring the search outputs up to date."
    if not path.is_file():
        raise StaleSearchOutputs(f"{where} was computed from the trial log {path}, which no longer exists. {rerun}")
    header, records = read_log(path)
    records = [r for r in records if not r.get("lost")]  # as the search counts them: a lost fit is not a result
    if "created" in stamp and header.get("created") != stamp["created"]:  # stamps written before this check have none
        raise StaleSearchOutputs(
            f"{where} was computed from the trial log {path} started at {_when(stamp['created'])}, and the log there now "
            f"is another one, started at {_when(header.get('created'))}: no search has written these outputs from it yet. "
            f"{rerun}"
        )
    if header.get("fingerprint") != stamp["fingerprint"] or len(records) != stamp["records"]:
        raise StaleSearchOutputs(
            f"{where} does not match the trial log {path}: it was computed from {stamp['records']} record(s) under "
            f"config {stamp['fingerprint']}, and the log now holds {len(records)} under {header.get('fingerprint')} "
            f"(a later search changed it and did not finish). {rerun}"
        )
    searched_on = logged_data_content(header)
    if data_content is not None and searched_on is not None and searched_on != data_content:
        raise StaleSearchOutputs(
            f"{where} was found on other data than the search subset and seed validation pool now on disk (data "
            f"{searched_on} in {path}, {data_content} now): ingest ran since with other settings or another source. "
            f"Run the search again on this data, or ingest with the settings the search used."
        )


def _when(created) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(created or 0.0)))


def search_config(best_policy: dict) -> dict | None:
    """The search section of the config that found ``best_policy``, from its trial log's header (None for a policy
    that is not a search's, or whose log is gone)."""
    stamp = _stamp(best_policy)
    if not stamp or not Path(stamp["path"]).is_file():
        return None
    return (read_log(stamp["path"])[0].get("config") or {}).get("search")


def _json_safe(value):
    """NaN and ±inf (a fixed base has no margin; identical gains have an infinite z) become null: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _se_units(value: float | None, se: float | None) -> float | None:
    if value is None or se is None or not se or math.isnan(se):
        return None
    return value / se


def trials_table(result: SearchResult) -> pd.DataFrame:
    """One row per fit, in the order they finished: stage, seed, reward, gain ± SE, timing, the policy."""
    return records_table(result.records)


def records_table(records: list[TrialRecord]) -> pd.DataFrame:
    """``trials_table`` of any list of records (e.g. another method's log)."""
    rows = []
    for r in records:
        policy = Policy.from_dict(r.policy)
        rows.append({
            "key": r.key, "stage": r.stage, "trial_id": r.trial_id, "method": r.method, "base": r.base,
            "seed_index": r.seed_index, "status": r.status, "reward": r.reward, "gain_over_baseline": r.gain,
            "gain_se": r.gain_se, "gain_in_se": _se_units(r.gain, r.gain_se), "fallback_epochs": r.fallback,
            "wall_seconds": round(r.wall_seconds, 3),
            "policy": policy_summary(policy), "reason": r.reason,
        })  # fmt: skip
    return pd.DataFrame(rows).astype({"trial_id": "Int64"})


def base_label(result: SearchResult) -> str:
    return BASE_LABELS[result.noise_floor.base]


def verdict(result: SearchResult) -> str:
    """The search's answer in one sentence, honest about noise."""
    base = base_label(result)
    if result.screens and not result.search_trials:
        return f"no policy beat {base}: the op screen dropped every op (each hurt beyond {ACCEPT_SE:g} SE at every magnitude tried)"
    trials = result.search_trials
    if trials and not any(t.ok for t in trials):
        return f"no policy beat {base}: all {len(trials)} policy trials failed to train (the first: {trials[0].reason})"
    if not result.reevaluated:
        return f"no policy was re-evaluated (reevaluate_top: 0), so none is known to beat {base} beyond noise"
    accepted = result.accepted
    if not accepted:
        best = result.reevaluated[0]
        if not best.gains and best.candidate_failed:
            untrained = " and was not trained on the rest" if best.stopped_early else ""
            return (f"no policy beat {base} beyond noise: the best-ranked one (trial {best.trial_id}) failed to train on "
                    f"{best.candidate_failed} fresh seed(s) where the base trained{untrained}")  # fmt: skip
        if not best.gains:
            return (f"no policy beat {base} beyond noise: the re-evaluation finished no pair of fits (the base failed "
                    f"to train on every fresh seed)")  # fmt: skip
        z = f", {best.z:+.1f} SE" if not math.isnan(best.z) else ""
        n = len(best.gains)
        stopped = f" (stopped early: no result on its remaining seeds could take it beyond {ACCEPT_SE:g} SE)" if best.stopped_early else ""
        failed = f"; it failed to train on {best.candidate_failed} fresh seed(s) where the base trained" if best.candidate_failed else ""
        return (f"no policy beat {base} beyond noise: the best re-evaluated one (trial {best.trial_id}) gained "
                f"{best.mean:+.4f}{z} over {n} paired seed{'' if n == 1 else 's'}{stopped}{failed}")  # fmt: skip
    parts = [f"trial {p.trial_id} {p.mean:+.4f} ± {p.se:.4f} ({p.z:+.1f} SE)" for p in accepted]
    return f"{len(accepted)} polic{'y' if len(accepted) == 1 else 'ies'} beat {base} beyond {ACCEPT_SE:g} SE on fresh seeds: {'; '.join(parts)}"


def search_metrics(result: SearchResult) -> dict[str, float]:
    """One search in numbers, for the parent MLflow run, so searches can be sorted against each other: the base's
    mean reward over the noise seeds, the best policy trial's reward and gain, the best re-evaluated paired gain
    (± SE) where the re-evaluation ran, trial counts and the seconds spent in fits."""
    trials = result.search_trials
    ok = [t for t in trials if t.ok]
    metrics = {
        "baseline_reward": result.noise_floor.mean,
        "noise_floor_std": result.noise_floor.std,
        "trials_done": float(len(trials)),
        "trials_failed": float(len(trials) - len(ok)),
        "fit_seconds": float(sum(r.wall_seconds for r in result.records)),
        "accepted_policies": float(len(result.accepted)),
    }
    if result.screens:
        metrics["ops_screened_out"] = float(len(result.screened_out))
    if ok:
        best = max(ok, key=lambda t: t.reward)
        metrics |= {"best_reward": best.reward, "best_trial_gain": best.gain, "best_trial_gain_in_se": _se_units(best.gain, best.gain_se)}
    if result.reevaluated:
        top = result.reevaluated[0]
        metrics |= {"best_paired_gain": top.mean, "best_paired_gain_se": top.se, "best_paired_gain_in_se": top.z}
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}


def summary_lines(result: SearchResult, combine_top: int, child_trains_as_final: bool = False) -> list[str]:
    """What the search found, in words: the console's closing summary (``best_policy.json`` combines the first
    ``combine_top`` accepted policies). When nothing beat the base on a child that trains in a shorter regime than the
    final model, it says so: such a child marks down regularisers the final model can afford."""
    trials = result.search_trials
    failed = sum(not t.ok for t in trials)
    lines = [f"{len(trials)} policy trials ({failed} failed), {result.reward} reward; "
             f"{result.base_choice.describe(BASE_LABELS)}",  # fmt: skip
             f"Verdict: {verdict(result)}"]
    if result.screens:
        lines.insert(1, screen_summary(result))
    for p in result.accepted:
        lines.append(f"  trial {p.trial_id} ({p.mean:+.4f} ± {p.se:.4f}): {policy_summary(Policy.from_dict(result.trial(p.trial_id).policy))}")
    combined = [f"trial {p.trial_id}" for p in result.accepted[:combine_top]]
    if len(combined) == len(result.accepted) > 0:
        lines.append("best_policy.json combines the sub-policies of the policies above")
    elif combined:
        lines.append(f"best_policy.json combines the sub-policies of the best {len(combined)} ({', '.join(combined)}; "
                     f"search.combine_top: {combine_top})")
    else:
        lines.append(f"best_policy.json holds no operations: evaluate's standard+found is {base_label(result)} alone")
        if not child_trains_as_final:
            lines.append("This is the child's verdict, and the child does not train as the final model does (search.child "
                         "and ingest.train_set_size against evaluate): a child shorter than the final model marks down "
                         "regularisers the final model can afford (README, \"Which child sees the gain?\"). `kedro run "
                         "--pipelines=search --env final_regime --params=search.fresh_start=true` searches again with the "
                         "CPU final model's regime (evaluate's defaults) as the child: hours on 2 CPU cores.")  # fmt: skip
    return lines


def screen_summary(result: SearchResult) -> str:
    """The op screen in one line: what it dropped, and each dropped op's gains."""
    if not result.screened_out:
        return f"op screen: every op kept ({len({s.op for s in result.screens})} screened)"
    gains = {op: ", ".join("failed" if s.gain is None else f"{s.gain:+.4f} at {s.magnitude:g}" for s in result.screens if s.op == op)
             for op in result.screened_out}  # fmt: skip
    return f"op screen: dropped {'; '.join(f'{op} ({g})' for op, g in gains.items())}"


def _reevaluation_entry(p: PairedGain | None) -> dict | None:
    if p is None:
        return None
    return {"paired_gain": p.mean, "paired_gain_se": p.se, "paired_gain_in_se": p.z, "seeds": len(p.gains),
            "gains": list(p.gains), "accepted": p.accepted, "stopped_early": p.stopped_early,
            "failed_seeds": p.candidate_failed}  # fmt: skip


def top_policies(result: SearchResult, k: int) -> dict:
    """The top-k policies as JSON (``Policy.load(path, rank=i)`` reads entry i): the re-evaluated ones first, by
    mean paired gain, then the rest by their single-seed reward."""
    paired = {p.trial_id: p for p in result.reevaluated}
    reevaluated = [result.trial(p.trial_id) for p in result.reevaluated]
    rest = [t for t in ranked_search_trials(result.records) if t.trial_id not in paired]
    entries = []
    for rank, t in enumerate((reevaluated + rest)[:k]):
        entries.append({
            "rank": rank, "trial_id": t.trial_id, "reward": t.reward, "gain_over_baseline": t.gain,
            "gain_se": t.gain_se, "reevaluation": _reevaluation_entry(paired.get(t.trial_id)), "policy": t.policy,
        })  # fmt: skip
    return _json_safe({"schema_version": SCHEMA_VERSION, "base_augmentation": result.noise_floor.base,
                       "verdict": verdict(result), "search_log": search_log_stamp(result), "policies": entries})  # fmt: skip


TOP_POLICY_COLUMNS = ["rank", "trial_id", "reward", "gain_over_baseline", "gain_se", "paired_gain", "paired_gain_se",
                      "paired_gain_in_se", "paired_seeds", "accepted", "stopped_early"]  # fmt: skip


def top_policies_table(top: dict) -> pd.DataFrame:
    """The top-k policies for people: one row per policy, one column per sub-policy."""
    rows = []
    for entry in top["policies"]:
        policy = Policy.from_dict(entry["policy"])
        re = entry["reevaluation"] or {}
        row = {k: entry[k] for k in TOP_POLICY_COLUMNS[:5]}
        row.update({"paired_gain": re.get("paired_gain"), "paired_gain_se": re.get("paired_gain_se"),
                    "paired_gain_in_se": re.get("paired_gain_in_se"), "paired_seeds": re.get("seeds"),
                    "accepted": re.get("accepted"), "stopped_early": re.get("stopped_early")})  # fmt: skip
        row.update({f"sub_policy_{i + 1}": d for i, d in enumerate(policy.describe())})
        rows.append(row)
    # With no policy (every trial failed) the CSV still has its header: a file with no columns cannot be read back.
    table = pd.DataFrame(rows) if rows else pd.DataFrame(columns=TOP_POLICY_COLUMNS)
    return table.astype({"paired_seeds": "Int64"})  # a count, blank where not re-evaluated (not 1.0)



def best_combined_policy(result: SearchResult, combine_top: int) -> dict:
    """AutoAugment's final policy, from accepted policies only: the sub-policies of the best ``combine_top`` whose
    paired gain exceeds 2 SE. With none accepted it holds no operations, and says why."""
    accepted = result.accepted[:combine_top]
    policies = [Policy.from_dict(result.trial(p.trial_id).policy) for p in accepted]
    combined = Policy.combine(policies) if policies else Policy((), p_none=1.0)
    choice = result.base_choice
    meta = {
        "source": "search",
        "method": result.method,
        "reward": result.reward,
        "base_augmentation": result.noise_floor.base,
        "base_label": base_label(result),
        "base_choice": {"means": choice.means, "runner_up": choice.runner_up, "margin": choice.margin,
                        "margin_se": choice.margin_se, "in_words": choice.describe(BASE_LABELS)},  # fmt: skip
        "noise_floor": {"base_rewards": list(result.noise_floor.rewards), "std": result.noise_floor.std},
        "verdict": verdict(result),
        "screened_out": list(result.screened_out) if result.screens else None,
        "trial_ids": [p.trial_id for p in accepted],
        "paired_gains": [p.mean for p in accepted],
        "paired_gain_ses": [p.se for p in accepted],
        "search_log": search_log_stamp(result),
        "mlflow_run_id": result.mlflow_run_id or None,
    }
    return Policy(combined.sub_policies, combined.p_none, _json_safe(meta)).to_dict()


def convergence_figure(tables: dict[str, pd.DataFrame]) -> plt.Figure:
    """Every search trial's reward as a point and the running best as a line (one colour per method, from their
    trial tables), and the trials' reference. Under the retrain reward that is the base's mean ± one noise-floor
    standard deviation as a band, and the base on seed 0, which the trials (all on seed 0) are paired with; under the
    density reward, the base alone scored on its trained children (the base's retrained rewards are another scale)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    reference_drawn = False
    density = False
    for i, (method, table) in enumerate(sorted(tables.items())):
        colour = f"C{i}"
        trials = table[table["stage"] == "search"].sort_values("trial_id")
        ids = trials["trial_id"].to_numpy(np.int64)
        rewards = np.where(trials["status"] == "ok", trials["reward"], np.nan).astype(np.float64)
        if not len(trials):
            continue
        ax.plot(ids, rewards, "o", color=colour, alpha=0.45, markersize=4, label=f"{method}: each trial")
        ax.step(ids, np.fmax.accumulate(np.nan_to_num(rewards, nan=-np.inf)), where="post", color=colour,
                label=f"{method} search: best so far")  # fmt: skip
        if reference_drawn:
            continue
        chosen = trials["base"].iloc[0]
        reference = table[(table["stage"] == "reference") & (table["status"] == "ok")]["reward"]
        base = table[(table["stage"] == "baseline") & (table["status"] == "ok") & (table["base"] == chosen)]["reward"]
        if len(reference):
            density = True
            ax.axhline(float(reference.iloc[0]), color="black", linestyle=":", linewidth=1.2,
                       label=f"{BASE_LABELS[chosen]} alone on its trained children (trials' reference)")  # fmt: skip
            reference_drawn = True
        elif len(base) > 1:
            mean, std = float(base.mean()), float(base.std(ddof=1))
            ax.axhspan(mean - std, mean + std, color="gray", alpha=0.2, label=f"base ({BASE_LABELS[chosen]}) mean ± 1 std")
            ax.axhline(mean, color="gray", linestyle="--", linewidth=1)
            seed0 = table[(table["stage"] == "baseline") & (table["base"] == chosen) & (table["seed_index"] == 0)]["reward"]
            if len(seed0):  # trials run on seed 0 and their gains are paired with this
                ax.axhline(float(seed0.iloc[0]), color="black", linestyle=":", linewidth=1.2, label="base on seed 0 (trials' reference)")
            reference_drawn = True
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("trial")
    ax.set_ylabel("density reward (augmented held-out accuracy)" if density else "reward (validation accuracy)")
    ax.set_title("Search convergence")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
