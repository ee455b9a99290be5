"""The search: space, trial log, controller, tracking, and `kedro run --pipeline=search` end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from deepaug_pipeline.augment.policy import Policy
from deepaug_pipeline.config import SearchConfig
from deepaug_pipeline.search.controller import SearchLoop, make_optimizer, policy_params
from deepaug_pipeline.search.run import policy_space
from deepaug_pipeline.search.space import to_python
from deepaug_pipeline.search.tracking import TrackingTarget, TrialTracker
from deepaug_pipeline.search.trial_log import TrialLog, TrialLogMismatch, read_log
from tests.conftest import kedro_run, mlflow_runs, squashed_output


# --------------------------------------------------------------------------- space
def test_default_space_is_deepaugments_20_dimensions():
    space = policy_space(SearchConfig(), channels=3)
    dims = space.dimensions()
    assert len(dims) == 20
    assert sum(1 for d in dims if hasattr(d, "categories")) == 10
    assert len(dims[0].categories) == 20
    gray = policy_space(SearchConfig(), channels=1)
    assert "add-to-hue-and-saturation" not in gray.dimensions()[0].categories


def test_skopt_numpy_scalars_are_serialised_cleanly():
    space = policy_space(SearchConfig(), channels=1)
    optimizer = make_optimizer(space, SearchConfig(opt_initial_points=2), seed=0)
    for _ in range(2):
        optimizer.tell(optimizer.ask(), -0.5)
    point = optimizer.ask()  # from the surrogate: skopt then returns numpy scalars (np.str_)
    assert any(isinstance(v, np.generic) for v in point)
    policy = space.decode(point)
    params = policy_params(space.dimension_names(), point)
    text = json.dumps({"policy": policy.to_dict(), "params": params})
    assert "np." not in text and all(type(v) in (str, float, int) for v in params.values())
    assert space.encode(policy) == [to_python(v) for v in point]


# --------------------------------------------------------------------------- trial log
CONFIG = {"seed": 1, "search": {"child_epochs": 2}}


def _trial(i: int, reward: float = 0.5) -> dict:
    return {"trial_id": i, "status": "ok", "reward": reward, "point": None, "policy": {}}


def test_log_survives_a_line_cut_short_by_a_crash(tmp_path):
    path = tmp_path / "log.jsonl"
    log = TrialLog(path, CONFIG)
    log.append(_trial(0))
    log.append(_trial(1))
    with open(path, "a") as fh:
        fh.write('{"type": "trial", "trial_id": 2, "rew')  # kill -9 mid-write
    resumed = TrialLog(path, CONFIG)
    assert resumed.done_ids == {0, 1}
    resumed.append(_trial(2))
    assert [t["trial_id"] for t in read_log(path)[1]] == [0, 1, 2]


def test_log_under_another_config_is_refused_then_archived_on_request(tmp_path):
    path = tmp_path / "log.jsonl"
    TrialLog(path, CONFIG).append(_trial(0))
    changed = {"seed": 1, "search": {"child_epochs": 5}}
    with pytest.raises(TrialLogMismatch, match=r"different search config \(search.child_epochs: 2 → 5\).*fresh_start"):
        TrialLog(path, changed)
    assert read_log(path)[1][0]["trial_id"] == 0  # untouched
    fresh = TrialLog(path, changed, fresh_start=True)
    assert fresh.trials == [] and fresh.archived.exists()
    assert read_log(fresh.archived)[1][0]["trial_id"] == 0


# --------------------------------------------------------------------------- controller (real trials are covered below;
# here the trial is a pure function of the policy so the loop's bookkeeping is checked exactly)
def _score(policy: Policy) -> dict:
    mags = [o.magnitude for s in policy.sub_policies for o in s.operations]
    return {"status": "ok", "reason": None, "reward": float(np.mean(mags)), "histories": []}


def test_loop_resumes_without_rerunning_logged_trials(tmp_path):
    cfg = SearchConfig(iterations=6, opt_initial_points=3, progress=False)
    space = policy_space(cfg, 1)
    calls: list[Policy] = []

    def scored(policy):
        calls.append(policy)
        return _score(policy)

    log = TrialLog(tmp_path / "b.jsonl", CONFIG)
    SearchLoop(space, SearchConfig(iterations=3, opt_initial_points=3, progress=False), 0, log, scored).run()
    assert len(calls) == 4
    trials = SearchLoop(space, cfg, 0, TrialLog(tmp_path / "b.jsonl", CONFIG), scored).run()
    assert len(calls) == 7 and [t["trial_id"] for t in trials] == list(range(7))
    base = trials[0]["reward"]
    assert trials[0]["policy"]["p_none"] == 1.0
    assert all(t["gain"] == pytest.approx(t["reward"] - base) for t in trials)


def test_random_method_and_gp_surrogate_run():
    for cfg in (SearchConfig(method="random"), SearchConfig(surrogate="GP", opt_initial_points=2)):
        opt = make_optimizer(policy_space(cfg, 1), cfg, seed=0)
        for _ in range(3):
            point = opt.ask()
            opt.tell(point, -float(np.random.default_rng(0).uniform()))
        assert len(opt.Xi) == 3


def test_tracking_failure_warns_and_the_search_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    cfg = SearchConfig(iterations=2, opt_initial_points=2, progress=False)
    bad = TrackingTarget("http://127.0.0.1:9", "0", "abc")  # nothing listens on the discard port: server down
    log = TrialLog(tmp_path / "t.jsonl", CONFIG)
    with pytest.warns(UserWarning, match=r"MLflow tracking failed while logging trial 0 .*Connection refused.*which goes on"):
        trials = SearchLoop(policy_space(cfg, 1), cfg, 0, log, _score, TrialTracker(bad)).run()
    assert len(trials) == 3 and len(read_log(tmp_path / "t.jsonl")[1]) == 3


# --------------------------------------------------------------------------- Kedro, end to end
def test_kedro_search_end_to_end_with_mlflow(project):
    result = kedro_run(project, "--pipeline=search", "--env=test")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = project / "data" / "07_model_output"
    table = pd.read_csv(out / "trials.csv")
    assert table["trial_id"].tolist() == [0, 1, 2, 3, 4] and set(table["status"]) == {"ok"}
    assert table.loc[0, "policy"] == "no augmentation"
    np.testing.assert_allclose(table["gain_over_baseline"], table["reward"] - table.loc[0, "reward"], atol=1e-9)
    top = json.loads((out / "top_policies.json").read_text())
    assert len(top["policies"]) == 3 and top["policies"][0]["reward"] == table["reward"][1:].max()
    assert Policy.load(out / "top_policies.json", rank=1) == Policy.from_dict(top["policies"][1]["policy"])
    best = Policy.load(out / "best_policy.json")
    assert len(best.sub_policies) == 10  # top 2 policies × 5 sub-policies (conf/test combine_top: 2)
    assert len(pd.read_csv(out / "top_policies.csv")) == 3
    for png in ("convergence.png", "best_policy_grid.png"):
        assert (project / "data" / "08_reporting" / png).stat().st_size > 1000

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    parents, children = mlflow_runs(project)
    assert len(parents) == 1 and len(children) == 5
    parent = parents[0]
    assert parent.data.params["search.child_epochs"] == "2"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"best_policy.json", "top_policies.json", "convergence.png", "trials.csv"}
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        tid = int(child.data.tags["trial_id"])
        assert child.data.metrics["reward"] == pytest.approx(table.loc[tid, "reward"])
        assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 2  # one per epoch
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert f"trial_{tid:03d}.json" in artifacts
        if tid > 0:
            assert len(child.data.params) == 20 and f"policy_grid_{tid:03d}.png" in artifacts


def test_kill_9_mid_search_then_resume_loses_nothing(project):
    log_path = project / "data" / "07_model_output" / "trial_logs" / "bayesian.jsonl"
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kedro", "run", "--pipeline=search", "--env=test", "--params=search.iterations=12"],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline:
        if log_path.exists() and len(read_log(log_path)[1]) >= 4:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_log(log_path)[1]
    assert 4 <= len(before) < 13, "the search should have been killed mid-run"

    result = kedro_run(project, "--pipeline=search", "--env=test", "--params=search.iterations=12")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    after = read_log(log_path)[1]
    assert [t["trial_id"] for t in after] == list(range(13))  # exactly N + 1, none duplicated or lost
    assert after[: len(before)] == before  # nothing re-run or rewritten

    # A changed config is refused, and the log is kept; fresh_start archives it and starts over.
    changed = kedro_run(project, "--pipeline=search", "--env=test", "--params=search.iterations=12,search.child_epochs=3")
    assert changed.returncode != 0
    assert "writtenunderadifferentsearchconfig(search.child_epochs:2→3)" in squashed_output(changed)
    assert read_log(log_path)[1] == after
    fresh = kedro_run(project, "--pipeline=search", "--env=test", "--params=search.iterations=12,search.child_epochs=3,search.fresh_start=true")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    archived = [p for p in log_path.parent.glob("bayesian.*.jsonl")]
    assert len(archived) == 1 and read_log(archived[0])[1] == after
    assert [t["trial_id"] for t in read_log(log_path)[1]] == list(range(13))


def test_bayesian_and_random_overlay_in_the_convergence_plot(project):
    assert kedro_run(project, "--pipeline=search", "--env=test").returncode == 0
    result = kedro_run(project, "--pipeline=search", "--env=test", "--params=search.method=random")
    assert result.returncode == 0, result.stderr[-2000:]
    logs = sorted(p.name for p in (project / "data" / "07_model_output" / "trial_logs").glob("*.jsonl"))
    assert logs == ["bayesian.jsonl", "random.jsonl"]
    from deepaug_pipeline.search.results import convergence_figure
    from deepaug_pipeline.search.trial_log import TrialLogStore

    store = TrialLogStore(project / "data" / "07_model_output" / "trial_logs")
    config = dict(read_log(store.path_for("bayesian"))[0]["config"])
    config["search"] = {k: v for k, v in config["search"].items() if k != "method"}
    runs = store.comparable_runs(config)  # what the plot_convergence node overlays
    assert set(runs) == {"bayesian", "random"} and all(len(t) == 5 for t in runs.values())
    labels = [line.get_label() for line in convergence_figure(runs).axes[0].get_lines()]
    assert "bayesian search" in labels and "random search" in labels
