"""The search: space, trial log, controller, tracking, and `kedro run --pipelines=search` end to end."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from deepaug_pipeline.augment.policy import Policy
from deepaug_pipeline.cli import command_hint
from deepaug_pipeline.api import split_config
from deepaug_pipeline.config import ConfigError, EvaluateConfig, SearchConfig, canonical_search_config, parse_config, validate_params
from deepaug_pipeline.data import LabelledImages, data_fingerprint
from deepaug_pipeline.evaluate.final import run_grid
from deepaug_pipeline.evaluate.records import EvaluationRun
from deepaug_pipeline.evaluate.results import results_table as evaluate_results_table
from deepaug_pipeline.evaluate.strategies import strategy_aliases
from deepaug_pipeline.run_log import StaleSearchOutputs, TrialLog, TrialLogBusy, TrialLogCorrupt, TrialLogMismatch, TrialLogStore, fingerprint, read_log, refuse_changed_config
from deepaug_pipeline.search import results
from deepaug_pipeline.search.controller import SearchError, SearchLoop
from deepaug_pipeline.search.records import FitOutcome, FitRequest
from deepaug_pipeline.search.run import log_config, policy_space, run_search
from deepaug_pipeline.search.space import policy_optimizer, to_python
from deepaug_pipeline.search.tracking import TrackingTarget, TrialTracker, policy_params
from tests.conftest import GRID_MIN_SIDE, REPO, assert_real_png, kedro_run, kedro_session_run, make_images, mlflow_runs, search_params, squashed_output


# --------------------------------------------------------------------------- space
def test_a_bayesian_search_too_short_to_leave_its_random_phase_says_so():
    assert SearchConfig().random_only is None and SearchConfig(method="random", iterations=5).random_only is None
    assert SearchConfig(iterations=10, opt_initial_points=10).random_only.startswith(
        "search.iterations=10 is not above search.opt_initial_points=10: every trial is drawn at random")
    assert SearchConfig(iterations=11, opt_initial_points=10).random_only is None
    assert SearchConfig(iterations=10, opt_initial_points=10).warnings == [SearchConfig(iterations=10, opt_initial_points=10).random_only]


def test_an_op_screen_under_the_density_reward_is_said_to_drop_nearly_every_op():
    assert SearchConfig().warnings == [] and SearchConfig(screen_ops=True).warnings == []
    assert SearchConfig(reward="density").warnings == []
    screened = SearchConfig(reward="density", screen_ops=True)
    assert screened.warnings == [screened.density_screen_warning] and screened.density_screen_warning.startswith(
        "search.screen_ops under search.reward=density drops nearly every op")


def test_default_space_is_deepaugments_20_ops_plus_identity():
    space = policy_space(SearchConfig(), channels=3)
    dims = space.dimensions()
    assert len(dims) == 20
    assert sum(1 for d in dims if hasattr(d, "categories")) == 10
    assert len(dims[0].categories) == 21 and "identity" in dims[0].categories
    gray = policy_space(SearchConfig(), channels=1)
    assert "add-to-hue-and-saturation" not in gray.dimensions()[0].categories


def test_skopt_numpy_scalars_are_serialised_cleanly():
    space = policy_space(SearchConfig(), channels=1)
    optimizer = policy_optimizer(space, SearchConfig(opt_initial_points=2), seed=0)
    for _ in range(2):
        optimizer.tell(optimizer.ask(), -0.5)
    point = optimizer.ask()  # from the surrogate: skopt then returns numpy scalars (np.str_)
    assert any(isinstance(v, np.generic) for v in point)
    policy = space.decode(point)
    params = policy_params(space, policy)
    text = json.dumps({"policy": policy.to_dict(), "params": params})
    assert "np." not in text and all(type(v) in (str, float, int) for v in params.values())
    assert space.encode(policy) == [to_python(v) for v in point]
    # MLflow lists params sorted by name: each op's name and magnitude side by side, sub-policy by sub-policy.
    assert sorted(params)[:4] == ["s1_1_magnitude", "s1_1_op", "s1_2_magnitude", "s1_2_op"]


# --------------------------------------------------------------------------- trial log
CONFIG = {"seed": 1, "search": {"child": {"epochs": 2}}}


def _entry(key: str, reward: float = 0.5) -> dict:
    return {"key": key, "status": "ok", "reward": reward}


def test_log_survives_a_line_cut_short_by_a_crash(tmp_path):
    path = tmp_path / "log.jsonl"
    log = TrialLog(path, CONFIG)
    log.append(_entry("a"))
    log.append(_entry("b"))
    with open(path, "a") as fh:
        fh.write('{"type": "trial", "key": "c", "rew')  # kill -9 mid-write
    log.close()
    resumed = TrialLog(path, CONFIG)
    assert resumed.done_keys == {"a", "b"}
    resumed.append(_entry("c"))
    assert [t["key"] for t in read_log(path)[1]] == ["a", "b", "c"]


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path):
    """A crash between a record and its newline, or a log rewritten with "\\n".join: the record is whole, and
    resuming keeps it (it was cut away as a torn line) and ends it before the next record."""
    path = tmp_path / "log.jsonl"
    with TrialLog(path, CONFIG) as log:
        log.append(_entry("a"))
        log.append(_entry("b"))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert [t["key"] for t in read_log(path)[1]] == ["a", "b"]
    with TrialLog(path, CONFIG) as resumed:
        assert resumed.done_keys == {"a", "b"}
        resumed.append(_entry("c"))
    assert [t["key"] for t in read_log(path)[1]] == ["a", "b", "c"]


def test_log_under_another_config_is_refused_then_archived_on_request(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl"
    TrialLog(path, CONFIG).append(_entry("a"))
    changed = {"seed": 1, "search": {"child": {"epochs": 5}}}
    with pytest.raises(TrialLogMismatch, match=r"different search config \(search.child.epochs: 2 → 5\).*fresh_start"):
        TrialLog(path, changed)
    assert read_log(path)[1][0]["key"] == "a"  # untouched
    fresh = TrialLog(path, changed, fresh_start=True)
    assert fresh.trials == [] and fresh.archived.exists()
    assert read_log(fresh.archived)[1][0]["key"] == "a"
    # Two fresh starts within a second (smoke runs) keep both archives: the second does not replace the first.
    monkeypatch.setattr("deepaug_pipeline.run_log.time.strftime", lambda fmt: fresh.archived.name.split(".")[1])
    fresh.append(_entry("b"))
    fresh.close()
    again = TrialLog(path, CONFIG, fresh_start=True)
    assert again.archived != fresh.archived and read_log(fresh.archived)[1][0]["key"] == "a"
    assert read_log(again.archived)[1][0]["key"] == "b"
    # Under the same config too: a fresh start is asked for when the log's config is fine but its trials are not
    # wanted (a shorter search, fits on a base no longer chosen), as the search's own messages advise.
    again.append(_entry("c"))
    again.close()
    same = TrialLog(path, CONFIG, fresh_start=True)
    assert same.trials == [] and [t["key"] for t in read_log(same.archived)[1]] == ["c"]
    same.close()
    assert TrialLog(path, CONFIG).trials == []  # the empty fresh log resumes as it is


# --------------------------------------------------------------------------- the loop's bookkeeping. Here a fit is a
# pure function of (base, policy, seed), so stages, gains, resume and selection are checked exactly; real fits are
# covered in test_models_trial.py and end to end below.
class FunctionExecutor:
    """The in-process executor's contract (one slot, finished futures) around a scoring function."""

    slots = 1

    def __init__(self, score) -> None:
        self.score = score
        self.calls: list[FitRequest] = []

    def submit(self, request: FitRequest) -> Future:
        """A score of None is a fit that failed (a loss that was not finite)."""
        self.calls.append(request)
        future: Future = Future()
        reward = self.score(request)
        future.set_result(FitOutcome(status="ok", reward=float(reward), wall_seconds=0.01) if reward is not None else
                          FitOutcome(status="failed", reward=0.0, reason="the loss was not finite", wall_seconds=0.01))  # fmt: skip
        return future

    def next_done(self, futures):
        return next(iter(futures))

    def outcome(self, future):
        return future.result()


BASE_REWARD = {"none": 0.80, "crop": 0.82, "standard": 0.85}
SEED_JITTER = [0.000, 0.004, -0.003, 0.002, -0.001, 0.003, -0.002]


def _mean_magnitude(request: FitRequest) -> float:
    policy = Policy.from_dict(request.policy)
    return 0.0 if policy.p_none == 1.0 else float(np.mean([o.magnitude for s in policy.sub_policies for o in s.operations]))


def hurts(request: FitRequest) -> float:
    """Every policy costs reward: the stronger, the worse (as in a child that cannot profit from augmentation)."""
    return BASE_REWARD[request.base] + SEED_JITTER[request.seed_index] - 0.02 * _mean_magnitude(request)


def helps(request: FitRequest) -> float:
    """Every policy adds reward in proportion to its mean magnitude, plus a little seed-dependent noise."""
    policy_noise = 0.001 * SEED_JITTER[request.seed_index] * 100 * _mean_magnitude(request)
    return BASE_REWARD[request.base] + SEED_JITTER[request.seed_index] + 0.05 * _mean_magnitude(request) + policy_noise


def _loop(tmp_path, score, **overrides) -> tuple[SearchLoop, FunctionExecutor]:
    cfg = SearchConfig(**{"iterations": 5, "opt_initial_points": 3, "reevaluate_top": 2, **overrides})
    executor = FunctionExecutor(score)
    return SearchLoop(policy_space(cfg, 1), cfg, 0, TrialLog(tmp_path / "b.jsonl", CONFIG), executor), executor


def test_auto_base_measures_three_bases_and_every_gain_is_against_the_chosen_one(tmp_path):
    loop, executor = _loop(tmp_path, hurts)
    result = loop.run()
    baseline = [r for r in result.records if r.stage == "baseline"]
    assert [r.key for r in baseline] == [f"baseline/{b}/s{s}" for b in ("none", "crop", "standard") for s in range(3)]
    assert result.base_choice.chosen == "standard" and result.base_choice.runner_up == "crop"
    assert result.base_choice.margin == pytest.approx(0.03)
    floor = result.noise_floor
    assert floor.rewards == pytest.approx((0.85, 0.854, 0.847))
    for t in result.search_trials:
        assert t.base == "standard" and t.seed_index == 0
        assert t.gain == pytest.approx(t.reward - floor.rewards[0])  # the base on the same seed
        assert t.gain_se == pytest.approx(floor.std * np.sqrt(2))
    # Every policy's first paired gain is negative, which with 3 seeds no later pair can outweigh beyond 2 SE: the
    # re-evaluation stops after its first seed (the base and the 2 candidates once).
    assert len(executor.calls) == 9 + 5 + (1 + 2)
    assert all(p.stopped_early and len(p.gains) == 1 for p in result.reevaluated)


def scripted(odd_gains: list[float], noise_seeds: int):
    """Search trials as `helps`; on re-evaluation the odd trials gain ``odd_gains[fresh seed]`` over the base, the even
    ones about 2 points (beyond 2 SE)."""

    def score(request: FitRequest) -> float:
        if request.stage != "reevaluate" or request.trial_id is None:
            return helps(request)
        fresh = request.seed_index - noise_seeds
        gain = odd_gains[fresh] if request.trial_id % 2 else 0.02 + 0.001 * (fresh % 2)
        return BASE_REWARD[request.base] + SEED_JITTER[request.seed_index] + gain

    return score


LOSES_A_POINT = scripted([-0.01, -0.012, -0.009], noise_seeds=3)  # odd trials lose about a point on every fresh seed


@pytest.mark.parametrize("slots", [1, 3])
def test_reevaluation_stops_a_policy_no_seed_left_could_save_and_accepts_the_same_ones(tmp_path, slots):
    runs = {}
    for stop_early in (False, True):
        loop, executor = _loop(tmp_path / str(stop_early), LOSES_A_POINT, iterations=8, reevaluate_top=5,
                               base_augmentation="standard", reevaluate_stop_early=stop_early)  # fmt: skip
        executor.slots = slots
        runs[stop_early] = loop.run(), executor.calls
    (full, full_calls), (stopped, stopped_calls) = runs[False], runs[True]
    odd = {p.trial_id for p in full.reevaluated if p.trial_id % 2}
    assert odd and len(odd) < 5, "the top 5 hold both kinds"
    assert [p.trial_id for p in stopped.accepted] == [p.trial_id for p in full.accepted]
    assert {p.trial_id for p in full.accepted} == {p.trial_id for p in full.reevaluated} - odd
    for p in stopped.reevaluated:
        assert (p.stopped_early, len(p.gains)) == ((True, 1) if p.trial_id in odd else (False, 3))
        assert p.gains[0] == pytest.approx(next(f for f in full.reevaluated if f.trial_id == p.trial_id).gains[0])
    assert not any(p.stopped_early for p in full.reevaluated)
    fits = {c.key for c in full_calls} - {c.key for c in stopped_calls}
    assert fits == {f"reevaluate/{t}/s{s}" for t in odd for s in (4, 5)}  # the base still runs: others need it
    table = results.top_policies_table(results.top_policies(stopped, k=5)).set_index("trial_id")
    assert set(table.index[table["stopped_early"] == True]) == odd and set(table.loc[sorted(odd), "paired_seeds"]) == {1}  # noqa: E712


@pytest.mark.parametrize("odd_gains, noise_seeds, odd_runs", [
    ([0.01, -0.02, 0.03], 3, (True, 2)),  # positive first (S > 0: keeps going), then the sum turns negative: stops
    ([-0.001, 0.02, 0.021, 0.019, 0.02], 2, (False, 5)),  # of 5 seeds a negative first is outweighed: accepted
])  # fmt: skip
def test_reevaluation_stops_only_when_the_seeds_left_cannot_save_a_policy(tmp_path, odd_gains, noise_seeds, odd_runs):
    runs = {}
    for stop_early in (False, True):
        cfg = dict(iterations=8, reevaluate_top=5, base_augmentation="standard", noise_seeds=noise_seeds,
                   reevaluate_seeds=len(odd_gains), reevaluate_stop_early=stop_early)  # fmt: skip
        runs[stop_early] = _loop(tmp_path / str(stop_early), scripted(odd_gains, noise_seeds), **cfg)[0].run()
    full, stopped = runs[False], runs[True]
    assert [p.trial_id for p in stopped.accepted] == [p.trial_id for p in full.accepted]
    odd = [p for p in stopped.reevaluated if p.trial_id % 2]
    assert odd and all((p.stopped_early, len(p.gains)) == odd_runs for p in odd)
    assert all(p.accepted == (not odd_runs[0]) for p in odd)


def test_a_search_cut_short_in_an_early_stopped_reevaluation_resumes_to_the_same_result(tmp_path):
    settings = dict(iterations=8, reevaluate_top=5, base_augmentation="standard")
    whole = _loop(tmp_path / "whole", LOSES_A_POINT, **settings)[0].run()
    loop, executor = _loop(tmp_path / "cut", LOSES_A_POINT, **settings)
    submit = executor.submit

    def dies_in_the_reevaluation(request: FitRequest) -> Future:
        if sum(c.stage == "reevaluate" for c in executor.calls) == 4:
            raise KeyboardInterrupt  # the process ends here, as on kill -9: what is logged stays
        return submit(request)

    executor.submit = dies_in_the_reevaluation
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    loop.trial_log.close()
    logged = [t["key"] for t in read_log(tmp_path / "cut" / "b.jsonl")[1]]
    assert sum(k.startswith("reevaluate/") for k in logged) == 4
    again = FunctionExecutor(LOSES_A_POINT)
    cfg = SearchConfig(opt_initial_points=3, **settings)
    resumed = SearchLoop(policy_space(cfg, 1), cfg, 0, TrialLog(tmp_path / "cut" / "b.jsonl", CONFIG), again).run()
    assert not {c.key for c in again.calls} & set(logged)  # nothing logged runs again
    assert sorted(r.key for r in resumed.records) == sorted(r.key for r in whole.records)  # nor is anything left out
    assert resumed.reevaluated == whole.reevaluated


def test_an_accepted_policy_ranks_ahead_of_a_noisier_one_with_a_higher_mean(tmp_path):
    """Odd trials gain +0.05, -0.01, +0.04 (mean 0.027, 1.4 SE), even ones about 0.02 on every seed (accepted)."""
    loop, _ = _loop(tmp_path, scripted([0.05, -0.01, 0.04], noise_seeds=3), iterations=8, reevaluate_top=5,
                    base_augmentation="standard", reevaluate_stop_early=False)  # fmt: skip
    result = loop.run()
    noisy = [p for p in result.reevaluated if p.trial_id % 2]
    assert noisy and all(not p.accepted and p.mean > result.accepted[0].mean for p in noisy)
    assert [p.accepted for p in result.reevaluated] == sorted((p.accepted for p in result.reevaluated), reverse=True)
    top = results.top_policies(result, k=5)
    assert top["policies"][0]["trial_id"] == result.accepted[0].trial_id and top["policies"][0]["reevaluation"]["accepted"]
    assert results.search_metrics(result)["best_paired_gain"] == pytest.approx(result.accepted[0].mean)


def test_a_policy_that_fails_to_train_on_a_fresh_seed_is_not_accepted_nor_trained_further(tmp_path):
    """Even trials gain 2 points on every seed they train on, but fail on the first fresh seed."""
    def fails_on_seed_3(request: FitRequest) -> float | None:
        if request.stage == "reevaluate" and request.trial_id is not None and request.trial_id % 2 == 0 and request.seed_index == 3:
            return None
        return scripted([0.02, 0.021, 0.02], noise_seeds=3)(request)

    loop, executor = _loop(tmp_path, fails_on_seed_3, iterations=8, reevaluate_top=5, base_augmentation="standard")
    result = loop.run()
    failing = [p for p in result.reevaluated if p.trial_id % 2 == 0]
    assert failing and all(p.candidate_failed == 1 and not p.accepted for p in failing)
    assert {p.trial_id for p in result.accepted} == {p.trial_id for p in result.reevaluated if p.trial_id % 2}
    trained_after = {c.trial_id for c in executor.calls if c.stage == "reevaluate" and c.seed_index > 3}
    assert not trained_after & {p.trial_id for p in failing}  # settled by the failure: no more seeds spent on it
    entry = next(e for e in results.top_policies(result, k=8)["policies"] if e["trial_id"] == failing[0].trial_id)
    assert entry["reevaluation"]["failed_seeds"] == 1 and not entry["reevaluation"]["accepted"]


def test_when_every_policy_trial_fails_the_verdict_says_so_and_the_table_keeps_its_header(tmp_path):
    loop, _ = _loop(tmp_path, lambda r: None if r.stage == "search" else hurts(r), base_augmentation="standard")
    result = loop.run()
    assert results.verdict(result) == "no policy beat crop + flip: all 5 policy trials failed to train (the first: the loss was not finite)"
    table = results.top_policies_table(results.top_policies(result, k=5))
    table.to_csv(tmp_path / "top.csv", index=False)
    assert list(pd.read_csv(tmp_path / "top.csv").columns) == results.TOP_POLICY_COLUMNS


def test_the_verdict_says_when_the_best_policy_was_stopped_early(tmp_path):
    result = _loop(tmp_path, hurts)[0].run()
    best = result.reevaluated[0]
    assert results.verdict(result) == (
        f"no policy beat crop + flip beyond noise: the best re-evaluated one (trial {best.trial_id}) gained "
        f"{best.mean:+.4f} over 1 paired seed (stopped early: no result on its remaining seeds could take it beyond 2 SE)"
    )


def test_nothing_beats_the_base_so_the_best_policy_is_empty_and_evaluate_reuses_standard(tmp_path):
    result = _loop(tmp_path, hurts)[0].run()
    assert result.accepted == [] and len(result.reevaluated) == 2
    assert all(p.mean < 0 for p in result.reevaluated)
    assert results.verdict(result).startswith("no policy beat crop + flip beyond noise: the best re-evaluated one (trial ")
    best = Policy.from_dict(results.best_combined_policy(result, combine_top=5))
    assert best.is_empty and best.metadata["base_augmentation"] == "standard" and best.metadata["trial_ids"] == []
    assert best.metadata["search_log"]["created"] == read_log(result.log_path)[0]["created"] > 0  # which log, not only which config
    x = np.random.default_rng(0).integers(0, 255, (4, 12, 12, 1), dtype=np.uint8)
    assert np.array_equal(best.apply(x, seed=3, with_base=False).numpy(), x)  # an empty policy changes nothing

    # evaluate: standard + found is standard, labelled so, and not trained again
    assert strategy_aliases("standard", best) == {"standard+found": "standard"}
    cfg = EvaluateConfig(seeds=2, strategies=["none", "standard", "standard+found"])
    trained: list[tuple[str, int]] = []

    def train_one(strategy, seed_index):
        trained.append((strategy, seed_index))
        accuracy = 0.8 + 0.01 * len(trained)
        return EvaluationRun(f"{strategy}/{seed_index}", strategy, seed_index, "ok", accuracy, 1 - accuracy, 0.5, {}, 1.0)

    runs = run_grid(cfg, TrialLog(tmp_path / "e.jsonl", {"e": 1}), train_one, strategy_aliases("standard", best))
    assert sorted(trained) == [("none", 0), ("none", 1), ("standard", 0), ("standard", 1)]
    by_key = {(r.strategy, r.seed_index): r for r in runs}
    assert by_key[("standard+found", 1)].test_accuracy == by_key[("standard", 1)].test_accuracy
    assert by_key[("standard+found", 1)].same_as == "standard" and by_key[("standard+found", 1)].key == "standard+found/1"
    table = evaluate_results_table(runs, cfg.strategies, best).set_index("strategy")
    assert table.loc["standard+found", "label"] == "crop + flip (no policy found)"
    assert table.loc["standard+found", "same_as"] == "standard" and pd.isna(table.loc["standard", "same_as"])


def test_policies_that_beat_the_base_beyond_noise_are_combined_best_first(tmp_path):
    result = _loop(tmp_path, helps, base_augmentation="crop")[0].run()
    assert [r.key for r in result.records if r.stage == "baseline"] == ["baseline/crop/s0", "baseline/crop/s1", "baseline/crop/s2"]
    assert len(result.accepted) == 2 and all(p.z > 2 for p in result.accepted)
    ranked = sorted(result.search_trials, key=lambda t: -t.reward)[:2]
    assert {p.trial_id for p in result.accepted} == {t.trial_id for t in ranked}
    assert result.reevaluated[0].mean >= result.reevaluated[1].mean
    best = Policy.from_dict(results.best_combined_policy(result, combine_top=1))
    assert best.sub_policies == Policy.from_dict(result.trial(result.reevaluated[0].trial_id).policy).sub_policies
    assert best.metadata["base_augmentation"] == "crop" and best.metadata["trial_ids"] == [result.reevaluated[0].trial_id]
    top = results.top_policies(result, k=4)
    assert [e["trial_id"] for e in top["policies"][:2]] == [p.trial_id for p in result.reevaluated]
    assert top["policies"][0]["reevaluation"]["accepted"] and top["policies"][2]["reevaluation"] is None
    assert results.verdict(result).startswith("2 policies beat pad + crop beyond 2 SE on fresh seeds: trial ")


def test_loop_resumes_every_stage_without_rerunning_logged_fits(tmp_path):
    loop, first = _loop(tmp_path, helps, iterations=3)
    before = loop.run()
    loop.trial_log.close()
    assert len(first.calls) == 9 + 3 + 3 * 3
    cfg = SearchConfig(iterations=6, opt_initial_points=3, reevaluate_top=2)
    again = FunctionExecutor(helps)
    after = SearchLoop(policy_space(cfg, 1), cfg, 0, TrialLog(tmp_path / "b.jsonl", CONFIG), again).run()
    keys = [r.key for r in after.records]
    assert len(keys) == len(set(keys)) and keys[: len(before.records)] == [r.key for r in before.records]
    assert {r.key for r in again.calls} == set(keys) - {r.key for r in before.records}
    assert [c.trial_id for c in again.calls if c.stage == "search"] == [4, 5, 6]


@pytest.mark.parametrize("method", ["bayesian", "random"])
def test_a_search_resumed_in_or_after_the_random_phase_asks_what_an_uninterrupted_one_asked(tmp_path, method):
    """skopt drew random points from a stream that telling it the logged trials does not advance: a search killed
    after trial 2 of a 3-trial random phase proposed trial 1's policy again as trial 3, and so on."""
    def points(result) -> list:
        return [t.point for t in sorted(result.search_trials, key=lambda t: t.trial_id)]

    (tmp_path / "straight").mkdir()
    straight = points(_loop(tmp_path / "straight", helps, iterations=8, method=method)[0].run())
    assert len({str(p) for p in straight}) == 8
    for killed_after in (2, 5):  # in the random phase (opt_initial_points 3), and after it
        (tmp_path / str(killed_after)).mkdir()
        loop, _ = _loop(tmp_path / str(killed_after), helps, iterations=killed_after, method=method)
        loop.run()
        loop.trial_log.close()
        resumed, executor = _loop(tmp_path / str(killed_after), helps, iterations=8, method=method)
        assert points(resumed.run()) == straight
        assert [c.trial_id for c in executor.calls if c.stage == "search"] == list(range(killed_after + 1, 9))


def test_each_trials_progress_line_counts_that_trial_in_the_best_so_far(tmp_path, caplog):
    loop, _ = _loop(tmp_path, helps, iterations=4, reevaluate_top=0)
    with caplog.at_level(logging.INFO, logger="deepaug_pipeline.search.controller"):
        result = loop.run()
    lines = [m for m in caplog.messages if m.startswith("trial ")]
    best = np.maximum.accumulate([t.reward for t in result.search_trials])
    assert [float(re.search(r"best ([\d.]+)", line).group(1)) for line in lines] == pytest.approx(best, abs=1e-4)


def test_a_shorter_search_on_a_longer_log_keeps_every_logged_trial_and_says_so(tmp_path, caplog):
    loop, _ = _loop(tmp_path, helps, iterations=6)
    loop.run()
    loop.trial_log.close()
    shorter, executor = _loop(tmp_path, helps, iterations=4)
    with caplog.at_level(logging.WARNING, logger="deepaug_pipeline.search.controller"):
        result = shorter.run()
    assert sorted(t.trial_id for t in result.search_trials) == [1, 2, 3, 4, 5, 6]
    assert not [c for c in executor.calls if c.stage == "search"]
    assert "holds 6 policy trials, search.iterations asks for 4: all 6 are kept and ranked (trials 5 to 6 included)" in caplog.text


def _ops_in(request: FitRequest) -> set[tuple[str, float]]:
    return {(o.op, o.magnitude) for s in Policy.from_dict(request.policy).sub_policies for o in s.operations}


def hurts_some_ops(request: FitRequest) -> float:
    """invert and vertical-flip cost 5 points at any magnitude, rotate only above 0.5; the rest nothing."""
    ops = _ops_in(request)
    cost = 0.05 * any(op in ("invert", "vertical-flip") or (op == "rotate" and m > 0.5) for op, m in ops)
    return BASE_REWARD[request.base] + SEED_JITTER[request.seed_index] - cost


def test_the_op_screen_drops_ops_that_hurt_at_both_magnitudes_and_the_optimiser_never_proposes_them(tmp_path):
    loop, executor = _loop(tmp_path, hurts_some_ops, screen_ops=True, base_augmentation="standard", iterations=12)
    searched = [o for o in loop.space.op_names if o != "identity"]
    result = loop.run()
    screen = [r for r in result.records if r.stage == "screen"]
    assert [r.key for r in screen] == [f"screen/{o}/{m:g}" for o in searched for m in (0.25, 0.75)]
    for r in screen:  # each op alone, against the base on seed 0
        op, m = r.key.split("/")[1], float(r.key.split("/")[2])
        assert _ops_in(FitRequest.screen(op, m, "standard", r.policy)) == {(op, m), ("identity", 0.0)}
        assert r.seed_index == 0 and r.gain == pytest.approx(r.reward - result.noise_floor.rewards[0])
    assert result.screened_out == ("vertical-flip", "invert")  # rotate hurts at 0.75 only: kept
    proposed = {op for t in result.search_trials for op, _ in _ops_in(FitRequest.screen("x", 0, "", t.policy))}
    assert len(result.search_trials) == 12 and proposed and not proposed & {"vertical-flip", "invert"}
    assert "rotate" in loop.space.op_names and "invert" not in loop.space.op_names
    assert results.search_metrics(result)["ops_screened_out"] == 2.0
    assert results.screen_summary(result).startswith("op screen: dropped vertical-flip (-0.05")
    assert Policy.from_dict(results.best_combined_policy(result, 5)).metadata["screened_out"] == ["vertical-flip", "invert"]
    loop.trial_log.close()

    # resumed: the screen is read from the log, not run again, and the space is the same
    cfg = SearchConfig(iterations=12, opt_initial_points=3, reevaluate_top=2, screen_ops=True, base_augmentation="standard")
    again = FunctionExecutor(hurts_some_ops)
    resumed = SearchLoop(policy_space(cfg, 1), cfg, 0, TrialLog(tmp_path / "b.jsonl", CONFIG), again).run()
    assert again.calls == [] and resumed.screened_out == result.screened_out


def test_when_the_screen_drops_every_op_nothing_is_searched_and_the_verdict_says_why(tmp_path):
    def every_op_hurts(request: FitRequest) -> float:
        cost = 0.05 * any(op != "identity" for op, _ in _ops_in(request))
        return BASE_REWARD[request.base] + SEED_JITTER[request.seed_index] - cost

    # Without identity in the list too: the optimiser was built on an empty space (ZeroDivisionError), on every rerun.
    for ops in (["identity", "invert", "rotate"], ["invert", "rotate"]):
        loop, executor = _loop(tmp_path / "-".join(ops), every_op_hurts, screen_ops=True, base_augmentation="standard", ops=ops)
        result = loop.run()
        assert result.screened_out == ("invert", "rotate")
        assert [r.stage for r in executor.calls] == ["baseline"] * 3 + ["screen"] * 4  # no trials, no re-evaluation
        assert results.verdict(result) == ("no policy beat crop + flip: the op screen dropped every op (each hurt beyond "
                                           "2 SE at every magnitude tried)")  # fmt: skip
        assert Policy.from_dict(results.best_combined_policy(result, 5)).is_empty


def test_an_op_list_that_leaves_nothing_to_search_is_refused_before_any_fit():
    with pytest.raises(ConfigError, match=r"'ops' \['identity'\] holds no op to search"):
        parse_config(SearchConfig, {"ops": ["identity"]}, "search")
    colour_only = SearchConfig(ops=["identity", "color", "grayscale"])
    assert "color" in policy_space(colour_only, 3).op_names
    with pytest.raises(ConfigError, match=r"search.ops \['identity', 'color', 'grayscale'\] leaves nothing to search on "
                                          r"1-channel images: colour ops drop out for grayscale"):  # fmt: skip
        policy_space(colour_only, 1)


def test_the_closing_summary_says_which_accepted_policies_best_policy_json_combines(tmp_path):
    result = _loop(tmp_path, scripted([0.02, 0.021, 0.02], noise_seeds=3), base_augmentation="standard")[0].run()
    first, second = (p.trial_id for p in result.accepted)
    assert results.summary_lines(result, 5)[-1] == "best_policy.json combines the sub-policies of the policies above"
    assert results.summary_lines(result, 1)[-1] == (f"best_policy.json combines the sub-policies of the best 1 (trial {first}; "
                                                    "search.combine_top: 1)")  # fmt: skip
    assert Policy.from_dict(results.best_combined_policy(result, 1)).metadata["trial_ids"] == [first]


def test_when_nothing_beats_the_base_the_summary_says_it_is_the_childs_verdict_unless_the_child_trains_as_the_final_model(tmp_path):
    empty = "best_policy.json holds no operations: evaluate's standard+found is crop + flip alone"
    nothing = _loop(tmp_path / "nothing", hurts)[0].run()
    assert results.summary_lines(nothing, 5, child_trains_as_final=True)[-1] == empty
    *_, last, hint = results.summary_lines(nothing, 5, child_trains_as_final=False)
    assert last == empty and hint.startswith("This is the child's verdict") and "--env final_regime" in hint
    accepted = _loop(tmp_path / "accepted", scripted([0.02, 0.021, 0.02], noise_seeds=3), base_augmentation="standard")[0].run()
    assert results.summary_lines(accepted, 5, child_trains_as_final=False)[-1] == "best_policy.json combines the sub-policies of the policies above"


def test_a_candidate_that_fails_on_its_first_fresh_seed_is_said_to_have_failed_not_to_lack_pairs(tmp_path):
    def fails_first_fresh(request: FitRequest):
        if request.stage == "reevaluate" and request.trial_id is not None and request.seed_index == 3:
            return None
        return scripted([0.02, 0.021, 0.02], noise_seeds=3)(request)

    result = _loop(tmp_path, fails_first_fresh, base_augmentation="standard")[0].run()
    best = result.reevaluated[0]
    assert best.stopped_early and best.candidate_failed == 1 and not result.accepted
    assert results.verdict(result) == (f"no policy beat crop + flip beyond noise: the best-ranked one (trial {best.trial_id}) "
                                       "failed to train on 1 fresh seed(s) where the base trained and was not trained on the rest")  # fmt: skip


def test_screen_ops_joins_the_fingerprint_only_when_on():
    assert "screen_ops" not in SearchConfig().result_defining()  # logs from before the key existed still resume
    assert SearchConfig(screen_ops=True).result_defining()["screen_ops"] is True


def test_the_overfit_gap_joins_the_fingerprint_only_under_the_rule_that_reads_it(tmp_path):
    assert "overfit_gap" not in SearchConfig().result_defining()["child"]  # reward_epochs: last never reads it
    assert SearchConfig(child={"reward_epochs": "best_non_overfit"}).result_defining()["child"]["overfit_gap"] == 0.1
    # A log whose header recorded the gap (before this) resumes under another gap, and is refused under the other rule.
    header = {"seed": 1, "search": {"child": {"epochs": 2, "overfit_gap": 0.1}}}
    with TrialLog(tmp_path / "b.jsonl", header) as log:  # as the version that recorded the gap wrote it
        log.append(_entry("a"))
    resumed = {"seed": 1, "search": {"child": {"epochs": 2, "overfit_gap": 0.2}}}
    with TrialLog(tmp_path / "b.jsonl", canonical_search_config(resumed), canonical=canonical_search_config) as log:
        assert [t["key"] for t in log.trials] == ["a"]
    other_rule = {"seed": 1, "search": {"child": {"epochs": 2, "overfit_gap": 0.1, "reward_epochs": "best_non_overfit"}}}
    with pytest.raises(TrialLogMismatch, match="reward_epochs"):
        TrialLog(tmp_path / "b.jsonl", canonical_search_config(other_rule), canonical=canonical_search_config)


@pytest.mark.parametrize("surrogate", ["RF", "ET"])
def test_the_float32_forest_asks_exactly_the_points_skopts_own_forest_asks(surrogate):
    from skopt import Optimizer

    cfg = SearchConfig(surrogate=surrogate, opt_initial_points=3)
    space = policy_space(cfg, 1)
    ours, theirs = policy_optimizer(space, cfg, seed=0), policy_optimizer(space, cfg, seed=0)
    skopts_own = Optimizer(space.dimensions(), base_estimator=surrogate).base_estimator_
    theirs.base_estimator_ = type(skopts_own)(**ours.base_estimator_.get_params())
    assert type(ours.base_estimator_) is not type(theirs.base_estimator_)  # the faster forest is in use
    rewards = np.random.default_rng(1).uniform(size=8)
    for r in rewards:
        a, b = ours.ask(), theirs.ask()
        assert [to_python(v) for v in a] == [to_python(v) for v in b]
        ours.tell(a, -float(r))
        theirs.tell(b, -float(r))
    assert len(ours.models) == 8 - 3 + 1


def test_random_method_and_gp_surrogate_ask_different_points_and_only_random_never_fits():
    optimizers, points = {}, {}
    for name, cfg in (("random", SearchConfig(method="random", opt_initial_points=2)),
                      ("gp", SearchConfig(surrogate="GP", opt_initial_points=2))):  # fmt: skip
        opt = policy_optimizer(policy_space(cfg, 1), cfg, seed=0)
        points[name] = []
        for i in range(4):
            point = opt.ask()
            points[name].append([to_python(v) for v in point])
            opt.tell(point, -float(np.random.default_rng(i).uniform()))
        optimizers[name] = opt
    assert optimizers["random"].models == [] and len(optimizers["gp"].models) == 4 - 2 + 1
    assert all(r != g for r, g in zip(points["random"], points["gp"]))  # each method draws from its own stream


def test_tracking_failure_warns_and_the_search_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    cfg = SearchConfig(iterations=2, opt_initial_points=2, base_augmentation="standard", noise_seeds=2, reevaluate_top=0)
    bad = TrackingTarget("http://127.0.0.1:9", "0", "abc")  # nothing listens on the discard port: server down
    log = TrialLog(tmp_path / "t.jsonl", CONFIG)
    loop = SearchLoop(policy_space(cfg, 1), cfg, 0, log, FunctionExecutor(hurts), TrialTracker(bad))
    # The first contact is the start-up reconciliation with the trial log; it warns once and the search goes on.
    with pytest.warns(UserWarning, match=r"MLflow tracking failed while reconciling MLflow with the trial log .*Connection refused.*which goes on"):
        result = loop.run()
    assert len(result.records) == 4 and len(read_log(tmp_path / "t.jsonl")[1]) == 4


def test_the_parent_run_shows_the_base_and_the_searchs_progress_while_it_runs(tmp_path):
    """A reviewer opening MLflow mid-search saw an empty parent run: the base, its noise and the best trial so far
    came only with the closing metrics. Each trial's gain names its reference and carries its SE."""
    from mlflow.tracking import MlflowClient

    from deepaug_pipeline.augment.baselines import BASE_LABELS

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("review")
    parent = client.create_run(experiment, tags={"mlflow.user": "ada", "mlflow.source.name": "kedro"}).info.run_id
    cfg = SearchConfig(iterations=3, opt_initial_points=2, base_augmentation="standard", noise_seeds=2, reevaluate_top=0)
    tracker = TrialTracker(TrackingTarget(uri, experiment, parent))
    seen_mid_search = {}

    def score(request: FitRequest) -> float:
        if request.stage == "search" and request.trial_id == 3:  # what a reviewer sees while trial 3 trains
            tracker.flush()
            seen_mid_search.update(client.get_run(parent).data.to_dictionary())
        return hurts(request)

    result = SearchLoop(policy_space(cfg, 1), cfg, 0, TrialLog(tmp_path / "t.jsonl", CONFIG), FunctionExecutor(score), tracker).run()
    assert seen_mid_search["tags"]["base_augmentation"] == "standard"
    assert seen_mid_search["tags"]["base_choice"] == result.base_choice.describe(BASE_LABELS)
    assert seen_mid_search["metrics"]["baseline_reward"] == pytest.approx(result.noise_floor.mean)
    assert seen_mid_search["metrics"]["noise_floor_std"] == pytest.approx(result.noise_floor.std)
    assert seen_mid_search["metrics"]["trials_so_far"] == 2
    done = client.get_metric_history(parent, "trials_so_far")
    assert sorted((m.step, m.value) for m in done) == [(1, 1.0), (2, 2.0), (3, 3.0)]  # one point per trial
    trials = [result.trial(i) for i in (1, 2, 3)]
    best = sorted(client.get_metric_history(parent, "best_reward_so_far"), key=lambda m: m.step)
    assert [m.value for m in best] == pytest.approx(list(np.maximum.accumulate([t.reward for t in trials])))
    gains = sorted(client.get_metric_history(parent, "best_trial_gain_so_far"), key=lambda m: m.step)
    assert gains[-1].value == pytest.approx(max(trials, key=lambda t: t.reward).gain)
    # The closing metrics (kedro-mlflow logs them at step 0) keep their own names: no progress point outranks them.
    assert not {"trials_done", "best_reward", "best_trial_gain"} & set(client.get_run(parent).data.metrics)
    trial = next(r for r in client.search_runs([experiment], "tags.stage = 'search'") if r.data.tags["trial_id"] == "2")
    assert trial.data.tags["gain_reference"] == "standard alone, seed 0"
    assert trial.data.metrics["gain_se"] == pytest.approx(result.trial(2).gain_se)
    assert (trial.data.tags["mlflow.user"], trial.data.tags["mlflow.source.name"]) == ("ada", "kedro")  # "Created by", "Source"


# --------------------------------------------------------------------------- Kedro, end to end
# conf/test: base standard under 2 noise seeds, 4 trials, the top 2 and the base re-trained on 2 fresh seeds, seed by
# seed (the base first)
TEST_KEYS = ["baseline/standard/s0", "baseline/standard/s1"] + [f"trial/{i}" for i in range(1, 5)] + ["reevaluate/base/s2"]


@pytest.mark.slow
def test_kedro_search_end_to_end_with_mlflow(project):
    result = kedro_run(project, "--pipelines=search", "--env=test")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Output to a pipe, not a terminal: one line per trial, then the closing summary with the paths and next steps.
    console = squashed_output(result)
    assert [console.count(f"trial{i}/4reward") for i in range(1, 5)] == [1, 1, 1, 1]
    for said in ("Searchfinished.", "4policytrials(0failed)", "Verdict:", "data/07_model_output/best_policy.json",
                 "data/07_model_output/top_policies.csv", "`kedrorun--pipelines=evaluate`", "?workflowType=machine_learning"):  # fmt: skip
        assert said in console, said
    out = project / "data" / "07_model_output"
    table = pd.read_csv(out / "trials.csv")
    assert table["key"].tolist()[:7] == TEST_KEYS and table["key"][9] == "reevaluate/base/s3"
    assert len(table) == 12 and set(table["status"]) == {"ok"}
    base = table[table["stage"] == "baseline"].set_index("seed_index")["reward"]
    search = table[table["stage"] == "search"]
    np.testing.assert_allclose(search["gain_over_baseline"], search["reward"] - base[0], atol=1e-9)
    np.testing.assert_allclose(search["gain_se"], base.std(ddof=1) * np.sqrt(2), atol=1e-9)
    top = json.loads((out / "top_policies.json").read_text())
    assert len(top["policies"]) == 3 and top["base_augmentation"] == "standard"
    reevaluated = [p for p in top["policies"] if p["reevaluation"]]
    assert len(reevaluated) == 2 and all(p["reevaluation"]["seeds"] == 2 for p in reevaluated)
    assert {p["trial_id"] for p in reevaluated} == set(search.nlargest(2, "reward")["trial_id"])
    assert Policy.load(out / "top_policies.json", rank=1) == Policy.from_dict(top["policies"][1]["policy"])
    best = Policy.load(out / "best_policy.json")
    accepted = [p["trial_id"] for p in reevaluated if p["reevaluation"]["accepted"]]
    assert best.metadata["trial_ids"] == accepted and len(best.sub_policies) == 5 * len(accepted)
    assert best.metadata["verdict"] == top["verdict"] and "beyond" in top["verdict"]
    assert len(pd.read_csv(out / "top_policies.csv")) == 3
    assert_real_png(project / "data" / "08_reporting" / "convergence.png")
    assert_real_png(project / "data" / "08_reporting" / "best_policy_grid.png", min_side=GRID_MIN_SIDE)

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    parents, children = mlflow_runs(project)
    assert len(parents) == 1 and len(children) == 12
    parent = parents[0]
    assert parent.data.params["search.child.epochs"] == "2"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"best_policy.json", "top_policies.json", "convergence.png", "trials.csv"}
    rewards, wall, policies = (table.set_index("key")[c] for c in ("reward", "wall_seconds", "policy"))
    # The search in numbers on its own run, so searches sort against each other.
    metrics = parent.data.metrics
    assert metrics["baseline_reward"] == pytest.approx(base.mean()) and metrics["best_reward"] == pytest.approx(search["reward"].max())
    assert (metrics["trials_done"], metrics["trials_failed"]) == (4, 0)
    assert metrics["best_paired_gain"] == pytest.approx(reevaluated[0]["reevaluation"]["paired_gain"])
    assert metrics["accepted_policies"] == len(accepted) and metrics["fit_seconds"] == pytest.approx(table["wall_seconds"].sum(), abs=0.01)
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        key = child.data.tags["key"]
        assert child.data.metrics["reward"] == pytest.approx(rewards[key])
        # The run spans the fit itself (logged afterwards, on the tracking thread), and its metrics carry its end time.
        duration = (child.info.end_time - child.info.start_time) / 1000
        assert wall[key] - 0.01 <= duration <= wall[key] + 1.0
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert len(history) == 1 and history[0].timestamp == child.info.end_time  # only the epoch the reward reads
        assert len(child.data.params) == 20  # the same policy dimensions on every run
        magnitudes = [float(v) for k, v in child.data.params.items() if "_magnitude" in k]
        assert magnitudes == [round(m, 3) for m in magnitudes] and child.data.tags["policy"] == policies[key]
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert "trial.json" in artifacts
        assert ("policy_grid.png" in artifacts) == (child.data.tags["stage"] == "search")
    # The artifacts hold the fit's record and a real grid, not just the right names.
    trial_run = next(c for c in children if c.data.tags["stage"] == "search")
    downloaded = Path(client.download_artifacts(trial_run.info.run_id, "", str(project / "artifacts")))
    assert json.loads((downloaded / "trial.json").read_text())["reward"] == pytest.approx(rewards[trial_run.data.tags["key"]])
    assert_real_png(downloaded / "policy_grid.png")


@pytest.mark.slow
def test_kill_9_during_reevaluation_then_resume_loses_nothing(ingested_project):
    project = ingested_project
    log_path = project / "data" / "07_model_output" / "trial_logs" / "bayesian.jsonl"
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    params = {"reevaluate_seeds": 4}
    subset = project / "data" / "05_model_input" / "search_subset.npz"

    def written() -> tuple[int, int]:  # a split is written to a new file renamed over the old: a new inode
        return subset.stat().st_ino, subset.stat().st_mtime_ns

    ingested = written()  # by the fixture, in another project folder linked to the same raw files
    proc = subprocess.Popen(
        [sys.executable, "-m", "kedro", "run", "--pipelines=search", "--env=test", search_params(**params)],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline:
        if log_path.exists() and any(t["stage"] == "reevaluate" for t in read_log(log_path)[1]):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_log(log_path)[1]
    expected = 2 + 4 + 4 * (1 + 2)
    assert any(t["stage"] == "reevaluate" for t in before) and len(before) < expected, "killed mid re-evaluation"

    kedro_session_run(project, "search", params={"search": params})
    after = read_log(log_path)[1]
    keys = [t["key"] for t in after]
    assert len(keys) == expected and len(set(keys)) == expected  # none duplicated or lost
    assert after[: len(before)] == before  # nothing re-run or rewritten
    assert written() == ingested  # the same source and settings: both runs reused the splits

    # MLflow agrees with the log: the killed parent is KILLED, and every logged fit has one finished child run.
    parents, children = mlflow_runs(project)
    assert sorted(p.info.status for p in parents) == ["FINISHED", "KILLED"]
    resumed = next(p for p in parents if p.info.status == "FINISHED")
    assert resumed.data.params["ingest.train_set_size"] == "200"  # logged by the search, as no ingest node ran
    finished = [c.data.tags["key"] for c in children if c.info.status in ("FINISHED", "FAILED")]
    assert sorted(finished) == sorted(keys)
    assert all(c.info.status == "KILLED" for c in children if c.data.tags["key"] not in finished or c.info.status == "RUNNING")

    # A changed config is refused before ingest, and the log is kept; fresh_start archives it and starts over. In
    # this process: what the command line prints of the refusal is command_hint's (tests/test_console.py).
    with pytest.raises(TrialLogMismatch, match=re.escape("written under a different search config (search.child.epochs: 2 → 3)")) as refused:
        kedro_session_run(project, "search", params={"search": {**params, "child": {"epochs": 3}}})
    assert refused.value.section == "search" and written() == ingested  # refused before ingest
    assert len(mlflow_runs(project)[0]) == 2  # and before a run was opened for it
    assert read_log(log_path)[1] == after
    kedro_session_run(project, "search", params={"search": {**params, "child": {"epochs": 3}, "fresh_start": True}})
    archived = [p for p in log_path.parent.glob("bayesian.*.jsonl")]
    assert len(archived) == 1 and read_log(archived[0])[1] == after
    assert len(read_log(log_path)[1]) == expected


@pytest.mark.slow
def test_bayesian_and_random_overlay_in_the_convergence_plot(ingested_project):
    project = ingested_project
    kedro_session_run(project, "search")
    kedro_session_run(project, "search", params={"search": {"method": "random"}})
    logs = sorted(p.name for p in (project / "data" / "07_model_output" / "trial_logs").glob("*.jsonl"))
    assert logs == ["bayesian.jsonl", "random.jsonl"]
    from deepaug_pipeline.run_log import TrialLogStore
    from deepaug_pipeline.search.records import TrialRecord
    from deepaug_pipeline.search.results import convergence_figure, records_table

    store = TrialLogStore(project / "data" / "07_model_output" / "trial_logs")
    config = dict(read_log(store.path_for("bayesian"))[0]["config"])
    config["search"] = {k: v for k, v in config["search"].items() if k != "method"}
    runs = store.comparable_runs(config, canonical_search_config)  # what the plot_convergence node overlays
    assert set(runs) == {"bayesian", "random"} and all(len(t) == 12 for t in runs.values())
    tables = {m: records_table([TrialRecord.from_json(t) for t in records]) for m, records in runs.items()}
    labels = [line.get_label() for line in convergence_figure(tables).axes[0].get_lines()]
    assert "bayesian search: best so far" in labels and "random search: best so far" in labels
    assert "random: each trial" in labels and "base on seed 0 (trials' reference)" in labels


# --------------------------------------------------------------------------- nothing silently wrong (issue 14)
def test_another_dataset_of_the_same_shape_is_another_search(tmp_path):
    x, y = make_images(60, 4, (12, 12))
    a, b = LabelledImages(x, y), LabelledImages(x[::-1].copy(), y)
    assert data_fingerprint(a, a) == data_fingerprint(LabelledImages(x.copy(), y.copy()), a)
    assert data_fingerprint(a, a) != data_fingerprint(b, a)
    summary = {"image_shape": [12, 12, 1], "n_classes": 4, "sizes": {"search_subset": 60}}
    cfg = SearchConfig()
    TrialLog(tmp_path / "l.jsonl", log_config(cfg, 0, summary, data_fingerprint(a, a))).append(_entry("a"))
    with pytest.raises(TrialLogMismatch, match=r"data.content: '[0-9a-f]{16}' → '[0-9a-f]{16}'"):
        TrialLog(tmp_path / "l.jsonl", log_config(cfg, 0, summary, data_fingerprint(b, a)))


# log_config(SearchConfig(), 0, <12x12x1, 4 classes, 60 images>, "c0ffee"), as the nested child section computes it
PINNED_FINGERPRINT = "899fd625e11eede0"  # 877edf62eff2cda9 on 2026-12-02: child.overfit_gap counts only under best_non_overfit
# d728bfe9af9b399c on 2026-12-02 (later): disjoint samples of 7000 images; 2026-12-03: overlapping, 20000 images, the
# least SE for the seconds (validation_noise.json)


def test_a_log_from_an_older_version_still_resumes(tmp_path):
    """benchmarks/results/retrain_default_search.jsonl.gz was written on 2026-11-30 by a version that kept DeepAugment's
    flat child keys (``child_epochs``, ``opt_last_n_epochs``), the validation sample size under ``ingest``, and the
    density keys under retrain. None of that changes a fit, so the search it ran resumes the log today: the default
    of then, with its validation samples (5000 images, drawn independently per seed, which it did not record)."""
    with gzip.open(REPO / "benchmarks" / "results" / "retrain_default_search.jsonl.gz", "rt") as fh:
        lines = fh.readlines()
    header = json.loads(lines[0])
    older = header["config"]
    assert "child_epochs" in older["search"] and "validation_sample_size" in older["ingest"]  # the old form, as written
    then = {"validation_sample_size": 5000, "validation_samples": "overlapping"}
    today = log_config(SearchConfig(child=then), older["seed"], older["data"], older["data"]["content"])
    assert fingerprint(today) != header["fingerprint"]
    path = tmp_path / "bayesian.jsonl"
    path.write_text("".join(lines))
    with TrialLog(path, today, canonical=canonical_search_config) as resumed:
        assert len(resumed.trials) == len(lines) - 1 > 40
        assert resumed.fingerprint == header["fingerprint"]  # its outputs' stamp names the file as it is on disk
    # A difference that changes the fits is still refused, and named as it is today, the moved key included.
    for child, named in [({**then, "epochs": 5}, "search.child.epochs: 60 → 5"),
                         ({**then, "validation_sample_size": 4000}, "search.child.validation_sample_size: 5000 → 4000"),
                         ({}, "search.child.validation_sample_size: 5000 → 20000"),
                         ({**then, "validation_samples": "disjoint"}, "search.child.validation_samples: 'overlapping' → 'disjoint'")]:  # fmt: skip
        changed = log_config(SearchConfig(child=child), older["seed"], older["data"], older["data"]["content"])
        with pytest.raises(TrialLogMismatch, match=re.escape(f"config ({named})")):
            TrialLog(path, changed, canonical=canonical_search_config)
    # The check made before the data is loaded (seed and search keys only) lets the old log through as well, and
    # refuses the same change by the same name.
    known = canonical_search_config({"seed": older["seed"], "search": SearchConfig(child=then).model_dump()})
    refuse_changed_config(path, known, "search", canonical_search_config)
    changed = canonical_search_config({"seed": older["seed"], "search": SearchConfig(child={**then, "epochs": 5}).model_dump()})
    with pytest.raises(TrialLogMismatch, match=re.escape("config (search.child.epochs: 60 → 5)")):
        refuse_changed_config(path, changed, "search", canonical_search_config)
    with pytest.raises(TrialLogMismatch, match=re.escape("config (seed: 42 → 7)")):
        refuse_changed_config(path, {**known, "seed": 7}, "search", canonical_search_config)
    # Today's fingerprint of a fixed config, pinned: a change to what it covers must be deliberate (logs stop resuming).
    summary = {"image_shape": [12, 12, 1], "n_classes": 4, "sizes": {"search_subset": 60}}
    assert fingerprint(log_config(SearchConfig(), 0, summary, "c0ffee")) == PINNED_FINGERPRINT


def test_density_images_beyond_the_pool_or_a_batch_larger_than_the_subset_is_refused_before_any_fit(tmp_path):
    x, y = make_images(160, 4, (12, 12))
    subset, pool = LabelledImages(x[:60], y[:60]), LabelledImages(x[60:], y[60:])
    cfg = SearchConfig(reward="density", child={"model": "fastcnn", "validation_sample_size": 150, "density_images": 150})
    summary = {"image_shape": [12, 12, 1], "n_classes": 4, "sizes": {"search_subset": 60, "seed_validation_pool": 100}}
    with pytest.raises(ConfigError, match=r"search.child.density_images=150 exceeds the seed validation pool \(100 images"):
        run_search(subset, pool, summary, TrialLogStore(tmp_path), cfg, seed=0)
    assert list(tmp_path.iterdir()) == []  # no trial log begun
    cfg = SearchConfig(child={"model": "fastcnn", "validation_sample_size": 50, "batch_size": 61})
    with pytest.raises(ConfigError, match=r"search.child.batch_size=61 exceeds the search subset \(60 images, ingest.train_set_size\)"):
        run_search(subset, pool, summary, TrialLogStore(tmp_path), cfg, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_seeds_whose_disjoint_validation_samples_overrun_the_pool_are_named():
    from deepaug_pipeline.search.run import validation_overlap

    cfg = SearchConfig(noise_seeds=3, reevaluate_seeds=3, child={"validation_sample_size": 7000, "validation_samples": "disjoint"})
    assert validation_overlap(cfg, 42000) is None and validation_overlap(cfg, 59000) is None
    text = validation_overlap(cfg, 41999)
    assert "holds 41999 images, fewer than 6 seeds (noise_seeds + reevaluate_seeds) × search.child.validation_sample_size=7000" in text
    assert text.endswith("search.child.validation_sample_size: 6999 keeps them apart.")
    assert validation_overlap(cfg.model_copy(update={"child": cfg.child.model_copy(update={"validation_samples": "overlapping"})}), 100) is None
    assert "6 seeds" in validation_overlap(cfg, 500)  # every seed the whole pool: all of it shared
    assert validation_overlap(cfg, 59).endswith("search.child.validation_samples: overlapping draws each seed's sample from all of it.")  # 9 a seed: below the minimum


def test_a_batch_larger_than_its_set_by_the_config_alone_is_refused_before_ingest():
    """Known from the parameters, so refused with them (before ingest runs), naming both keys as the caller wrote them."""
    with pytest.raises(ConfigError, match=r"^bad value for 'parameters': 'parameters.search.child.batch_size' \(201\) exceeds "
                                          r"'parameters.ingest.train_set_size' \(200\): a batch cannot hold more images"):  # fmt: skip
        validate_params({"ingest": {"train_set_size": 200}, "search": {"child": {"batch_size": 201}}})
    with pytest.raises(ConfigError, match=r"'parameters.evaluate.batch_size' \(301\) exceeds 'parameters.evaluate.train_size' \(300\)"):
        validate_params({"evaluate": {"train_size": 300, "batch_size": 301}})
    validate_params({"ingest": {"train_set_size": 200}, "search": {"child": {"batch_size": 200}}, "evaluate": {"train_size": None, "batch_size": 10**6}})
    with pytest.raises(ConfigError, match=r"^bad value for 'config': 'config.child_batch_size' \(201\) exceeds 'config.train_set_size' \(200\)"):
        split_config({"train_set_size": 200, "child_batch_size": 201})
    with pytest.raises(ConfigError, match=r"'config.child.batch_size' \(40\) exceeds 'config.train_set_size' \(30\)"):
        split_config({"train_set_size": 30, "child": {"batch_size": 40}})  # nested as given
    batch = SearchConfig().child.batch_size  # the default batch, named by the key that would set it
    with pytest.raises(ConfigError, match=rf"'config.child_batch_size' \({batch}\) exceeds 'config.train_set_size' \({batch - 1}\)"):
        split_config({"train_set_size": batch - 1})


def test_a_moved_key_is_refused_with_where_it_went():
    with pytest.raises(ConfigError, match=r"'child_epochs' is now 'search.child.epochs'; 'opt_last_n_epochs' is now "
                                          r"'search.child.last_n_epochs'"):  # fmt: skip
        validate_params({"search": {"child_epochs": 5, "opt_last_n_epochs": 2}})
    with pytest.raises(ConfigError, match=r"'validation_sample_size' is now 'search.child.validation_sample_size'"):
        validate_params({"ingest": {"validation_sample_size": 400}})


@pytest.mark.slow
def test_a_model_name_typo_is_refused_before_ingest_and_blocks_nothing(project):
    result = kedro_run(project, "--pipelines=search", "--env=test", "--params=search.child.model=fastcn")
    assert result.returncode == 1
    assert "Error(ConfigError):badvaluefor'parameters.search.child.model':unknownmodel'fastcn'" in squashed_output(result)
    assert "Traceback" not in result.stdout + result.stderr  # a message the user can act on, not 300 lines
    # Nothing ingested, no trial log begun: nothing a corrected run could find in its way.
    assert not (project / "data" / "05_model_input").exists() and not (project / "data" / "07_model_output").exists()
    bad_builder = kedro_run(project, "--pipelines=evaluate", "--env=test", "--params=evaluate.model=my_models.nope")
    assert bad_builder.returncode == 1 and "Traceback" not in bad_builder.stdout + bad_builder.stderr
    assert "cannotimportmodule'my_models'" in squashed_output(bad_builder)


def test_an_unknown_pipeline_name_lists_the_valid_ones(project):
    result = kedro_run(project, "--pipelines=serach", "--env=test")
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    assert "nopipelinenamed'serach';thisprojecthas:__default__,evaluate,ingest,search" in squashed_output(result)
    # `python -m deepaug_pipeline` (Kedro's packaged entry point) uses the same run command
    module = subprocess.run([sys.executable, "-m", "deepaug_pipeline", "--pipelines=serach", "--env=test"], cwd=project,
                            capture_output=True, text=True, env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"})  # fmt: skip
    assert module.returncode == 2 and "nopipelinenamed'serach'" in squashed_output(module)


def test_a_log_without_records_never_blocks_the_next_run(tmp_path):
    path = tmp_path / "log.jsonl"
    TrialLog(path, CONFIG)  # a run that failed before its first fit leaves a header only
    other = {"seed": 2}
    refuse_changed_config(path, other)  # nor does the check before the data is loaded
    refuse_changed_config(tmp_path / "absent.jsonl", other)
    assert TrialLog(path, other).trials == [] and read_log(path)[0]["config"] == other
    path.write_text('{"type": "header", "finger')  # a header torn by kill -9
    assert TrialLog(path, CONFIG).trials == [] and read_log(path)[0]["config"] == CONFIG


@pytest.mark.parametrize(
    "line, message",
    [(b"[1, 2]\n", r"line 3: expected a JSON object, got list"),
     (b"\xff\xfe not text\n", r"line 3: not a JSON record \(UnicodeDecodeError"),
     (b"{broken\n", r"line 3: not a JSON record \(JSONDecodeError")],
)  # fmt: skip
def test_a_damaged_log_is_refused_by_name_and_fresh_start_keeps_it(tmp_path, line, message):
    path = tmp_path / "log.jsonl"
    TrialLog(path, CONFIG).append(_entry("a"))
    with open(path, "ab") as fh:
        fh.write(line + b'{"type": "trial", "key": "b"}\n')
    with pytest.raises(TrialLogCorrupt, match=re.escape(str(path)) + ", " + message):
        TrialLog(path, CONFIG)
    fresh = TrialLog(path, CONFIG, fresh_start=True)
    assert fresh.trials == [] and fresh.archived.read_bytes().count(line) == 1


def test_one_run_per_log_at_a_time_and_a_killed_run_releases_it(tmp_path):
    path = tmp_path / "bayesian.jsonl"
    with TrialLog(path, CONFIG):
        with pytest.raises(TrialLogBusy, match=rf"{re.escape(str(path))} is in use by pid {os.getpid()} since .*Wait for it"):
            TrialLog(path, CONFIG)
    TrialLog(path, CONFIG).close()  # released on exit
    code = f"from deepaug_pipeline.run_log import TrialLog; log = TrialLog({str(path)!r}, {CONFIG!r}); print('held', flush=True); import time; time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(TrialLogBusy, match=rf"pid {holder.pid}"):
        TrialLog(path, CONFIG)
    holder.kill()
    holder.wait()
    TrialLog(path, CONFIG).close()  # the killed process's lock went with it


def test_evaluate_refuses_search_outputs_their_trial_log_no_longer_matches(tmp_path):
    log = TrialLog(tmp_path / "bayesian.jsonl", CONFIG)
    log.append(_entry("a"))
    stamp = {"path": str(log.path), "fingerprint": log.fingerprint, "records": 1}
    best = Policy((), p_none=1.0, metadata={"search_log": stamp}).to_dict()
    results.check_current(best, "best_policy.json")  # current: no error
    results.check_current(Policy.from_pairs([[("rotate", 0.3)]]).to_dict(), "mine.json")  # not from a search: passes
    log.append(_entry("b"))  # a later search went on and did not write its outputs
    with pytest.raises(StaleSearchOutputs, match=r"best_policy.json does not match the trial log .*bayesian.jsonl: it was "
                                                 r"computed from 1 record\(s\) .* now holds 2 .*Run the search again") as stale:  # fmt: skip
        results.check_current(best, "best_policy.json")
    # The library names no command; the command line adds the one that acts on its advice.
    assert "kedro" not in str(stale.value)
    assert command_hint(stale.value) == "To bring the search outputs up to date: kedro run --pipelines=search (same --env)"
    # Data other than the search's: ingest re-ran with other settings since the search.
    with TrialLog(tmp_path / "data.jsonl", {"seed": 1, "data": {"content": "aaaa"}}) as searched:
        searched.append(_entry("a"))
    on_data = {**best, "metadata": {"search_log": {"path": str(searched.path), "fingerprint": searched.fingerprint, "records": 1}}}
    results.check_current(on_data, "best_policy.json", data_content="aaaa")
    with pytest.raises(StaleSearchOutputs, match=r"best_policy.json was found on other data than the search subset and "
                                                 r"seed validation pool now on disk \(data aaaa in .*data.jsonl, bbbb now\)"):  # fmt: skip
        results.check_current(on_data, "best_policy.json", data_content="bbbb")
    lost = {**_entry("c"), "status": "failed", "lost": True}  # a fit a rerun with a smaller budget never reruns
    log.append(lost)
    with pytest.raises(StaleSearchOutputs):
        results.check_current(best, "best_policy.json")
    results.check_current({**best, "metadata": {"search_log": {**stamp, "records": 2}}}, "best_policy.json")  # not a result: not counted
    log.path.unlink()
    with pytest.raises(StaleSearchOutputs, match=r"which no longer exists"):
        results.check_current(best, "best_policy.json")


class LosesOneFit(FunctionExecutor):
    """As a Dask executor whose worker dies under the fit ``key`` every time it runs."""

    def __init__(self, score, key: str, reason: str) -> None:
        super().__init__(score)
        self.key, self.reason = key, reason

    def submit(self, request):
        future = super().submit(request)
        if request.key == self.key:
            future = Future()
            future.set_result(FitOutcome(status="failed", reward=0.0, lost=True, reason=self.reason))
        return future


def test_evaluate_refuses_search_outputs_from_a_log_since_started_afresh_under_the_same_config(tmp_path):
    # The fresh log has the same config and as many records as the one the outputs came from: only its start tells.
    with TrialLog(tmp_path / "bayesian.jsonl", CONFIG) as first:
        first.append(_entry("a"))
    stamp = {"path": str(first.path), "fingerprint": first.fingerprint, "created": first.created, "records": 1}
    best = Policy((), p_none=1.0, metadata={"search_log": json.loads(json.dumps(stamp))}).to_dict()  # as saved
    results.check_current(best, "best_policy.json")
    time.sleep(0.01)
    with TrialLog(tmp_path / "bayesian.jsonl", CONFIG, fresh_start=True) as again:
        again.append(_entry("a"))
    assert again.fingerprint == first.fingerprint and again.created > first.created
    with pytest.raises(StaleSearchOutputs, match=r"best_policy.json was computed from the trial log .*bayesian.jsonl started at "
                                                 r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d, and the log there now is another one, started at "):  # fmt: skip
        results.check_current(best, "best_policy.json")


def favours_crop(request: FitRequest) -> float:
    return {"none": 0.80, "crop": 0.86, "standard": 0.85}[request.base] + SEED_JITTER[request.seed_index]


def test_a_fit_the_executor_lost_is_run_again_on_resume(tmp_path):
    cfg = SearchConfig(iterations=3, opt_initial_points=3, reevaluate_top=0)
    log = TrialLog(tmp_path / "b.jsonl", CONFIG)
    loses = LosesOneFit(helps, "trial/2", "KilledWorker: worker died twice")
    loop = SearchLoop(policy_space(cfg, 1), cfg, 0, log, loses)
    # The other trials still run; then the search stops, with nothing told to the optimiser as a reward of 0.
    with pytest.raises(SearchError, match=r"1 fit\(s\) were lost twice each, to a Dask worker that died or to a device "
                                          r"out of memory \(trial/2: KilledWorker: worker died twice\).*rerun the search"):  # fmt: skip
        loop.run()
    log.close()
    assert [c.key for c in loses.calls if c.stage == "search"] == ["trial/1", "trial/2", "trial/2", "trial/3"]
    assert len(loop.optimizer.Xi) == 2 and "trial/2" not in loop.records
    assert [(t["key"], t["lost"]) for t in read_log(tmp_path / "b.jsonl")[1] if t["stage"] == "search"] == [
        ("trial/1", False), ("trial/2", True), ("trial/3", False)]  # fmt: skip
    again = FunctionExecutor(helps)
    second = SearchLoop(policy_space(cfg, 1), cfg, 0, TrialLog(tmp_path / "b.jsonl", CONFIG), again).run()
    assert [c.key for c in again.calls] == ["trial/2"]
    rerun = next(r for r in second.records if r.key == "trial/2")
    assert rerun.ok and not rerun.lost
    assert [t["status"] for t in read_log(tmp_path / "b.jsonl")[1] if t["key"] == "trial/2"] == ["ok"]  # replaced


def test_on_several_workers_no_point_is_handed_out_twice_and_no_batch_outgrows_the_slots(tmp_path):
    """Two slots and trial 6 lost twice: asked alone, skopt proposed its next point blind to the one still training
    (trial 8 repeated trial 7's point exactly). Workers that leave: the free slots went negative, and one batch took
    all but one of the trials left."""
    cfg = SearchConfig(iterations=10, opt_initial_points=3, reevaluate_top=0, base_augmentation="standard")

    class TwoSlots(LosesOneFit):
        slots = 2

    two = TwoSlots(helps, "trial/6", "KilledWorker: worker died twice")
    with pytest.raises(SearchError, match="lost twice"):
        SearchLoop(policy_space(cfg, 1), cfg, 0, TrialLog(tmp_path / "a.jsonl", CONFIG), two).run()
    points = {c.key: c.point for c in two.calls if c.stage == "search"}
    assert len(points) == 10 and len({json.dumps(p) for p in points.values()}) == 10

    class Shrinking(FunctionExecutor):  # three workers, then two of them leave once trial 5 is out
        @property
        def slots(self):
            return 1 if any(c.key == "trial/5" for c in self.calls) else 3

    shrinking = Shrinking(helps)
    loop = SearchLoop(policy_space(cfg, 1), cfg, 0, TrialLog(tmp_path / "b.jsonl", CONFIG), shrinking)
    batches = []
    ask_for = loop.optimizer.ask_for
    loop.optimizer.ask_for = lambda ids, pending=(): batches.append(ids) or ask_for(ids, pending)
    loop.run()
    assert max(map(len, batches)) <= 3 and sum(map(len, batches)) == 10 and all(len(b) == 1 for b in batches[2:])


def test_a_lost_baseline_fit_stops_the_search_before_a_base_is_chosen_without_it(tmp_path):
    """Counted as a failed fit, it left its base out of the choice: the trials ran on top of another base."""
    loses = LosesOneFit(favours_crop, "baseline/crop/s1", "KilledWorker: out of memory")
    loop, _ = _loop(tmp_path, favours_crop)
    loop.executor = loses
    with pytest.raises(SearchError, match=r"baseline/crop/s1: KilledWorker: out of memory"):
        loop.run()
    loop.trial_log.close()
    assert not [c for c in loses.calls if c.stage != "baseline"]
    rerun, executor = _loop(tmp_path, favours_crop)
    result = rerun.run()
    assert [c.key for c in executor.calls][0] == "baseline/crop/s1" and result.base_choice.chosen == "crop"
    assert {t.base for t in result.search_trials} == {"crop"}


def test_logged_fits_on_top_of_another_base_than_the_one_chosen_now_are_refused(tmp_path):
    loop, _ = _loop(tmp_path, favours_crop)
    loop.run()
    loop.trial_log.close()
    path = tmp_path / "b.jsonl"  # as a log whose crop baseline fits were lost (and so not results) would have it
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True) if '"baseline/crop/' not in line))
    others = sum(t["stage"] != "baseline" for t in read_log(path)[1])
    resumed, executor = _loop(tmp_path, hurts)  # crop now scores below crop + flip
    with pytest.raises(SearchError, match=rf"holds {others} fit\(s\) on top of base 'pad \+ crop' \(trial/1, ...\), but the "
                                          r"base chosen now is 'crop \+ flip'.*search.fresh_start: true"):  # fmt: skip
        resumed.run()
    assert {c.stage for c in executor.calls} == {"baseline"}
