"""A tracking outage never stops or stalls a run: refused port, malformed sqlite file, server killed mid-search."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from deepaug_pipeline import tracking_guard
from deepaug_pipeline.run_log import read_log
from deepaug_pipeline.tracking_guard import anchored_to_project, tracking_problem, tracking_uri
from tests.conftest import free_port, kedro_session_run, mlflow_server

SEARCH_OUTPUTS = ("data/07_model_output/trials.csv", "data/07_model_output/top_policies.json",
                  "data/07_model_output/top_policies.csv", "data/07_model_output/best_policy.json",
                  "data/08_reporting/convergence.png", "data/08_reporting/best_policy_grid.png")  # fmt: skip


def _use_tracking_uri(project: Path, uri: str) -> None:
    (project / "conf" / "test" / "mlflow.yml").write_text(f"server:\n  mlflow_tracking_uri: {uri}\n")


def _assert_outputs_written(project: Path) -> None:
    missing = [p for p in SEARCH_OUTPUTS if not (project / p).is_file()]
    assert not missing, f"not written: {missing}"
    assert len(read_log(project / "data/07_model_output/trial_logs/bayesian.jsonl")[1]) == 2 + 4 + 2 * 3


def test_the_uri_is_resolved_as_kedro_mlflow_resolves_it(tmp_path):
    assert tracking_uri({"server": {"mlflow_tracking_uri": "sqlite:///mlflow.db"}}, tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    assert tracking_uri({"server": {"mlflow_tracking_uri": "http://host:5000"}}, tmp_path) == "http://host:5000"
    assert tracking_uri({}, tmp_path) == (tmp_path / "mlruns").as_uri()
    assert tracking_problem(f"sqlite:///{tmp_path}/fresh.db") is None  # a new file is created, not a problem
    # Only a relative sqlite store is anchored (kedro-mlflow reads this form); a location the user set is kept.
    conf = {"server": {"mlflow_tracking_uri": "sqlite:///mlflow.db"}, "tracking": {"experiment": {"name": "e"}}}
    anchored = anchored_to_project(conf, tmp_path)
    assert anchored["server"]["mlflow_tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    assert anchored["tracking"]["experiment"]["create_experiment_kwargs"]["artifact_location"] == (tmp_path / "mlruns" / "e").as_uri()
    set_by_user = {**conf, "tracking": {"experiment": {"name": "e", "create_experiment_kwargs": {"artifact_location": "s3://b/e"}}}}
    assert anchored_to_project(set_by_user, tmp_path)["tracking"]["experiment"]["create_experiment_kwargs"]["artifact_location"] == "s3://b/e"
    for uri in ("http://host:5000", f"sqlite:///{tmp_path}/shared.db", "sqlite:///:memory:", "databricks"):
        assert anchored_to_project({**conf, "server": {"mlflow_tracking_uri": uri}}, tmp_path)["server"]["mlflow_tracking_uri"] == uri
    assert anchored_to_project({**conf, "tracking": None}, tmp_path)["tracking"] is None  # kedro-mlflow refuses it itself


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["refused port", "malformed sqlite file"])
def test_unusable_tracking_warns_once_and_the_search_writes_every_output(ingested_project, fault, monkeypatch):
    """In this process: what is tested is the session's hooks, not the process boundary (the killed-server test
    below runs `kedro run` itself). The guard's records are read by a filter on its own logger: Kedro's logging set-up
    replaces the handlers of the root logger (pytest's capture among them) and of the package's loggers, but keeps
    their filters."""
    project = ingested_project
    if fault == "refused port":
        _use_tracking_uri(project, f"http://127.0.0.1:{free_port()}")
        reason = "Connection refused"  # the end of urllib3's long line, which a cut at its head lost
    else:
        (project / "mlflow.db").write_bytes(b"this is not a database\n" * 200)
        reason = "DatabaseError: (sqlite3.DatabaseError) file is not a database"
    started = time.monotonic()
    messages: list[str] = []

    def read(record: logging.LogRecord) -> bool:
        messages.append(record.getMessage())
        return True  # the record goes on to the console as in any run

    monkeypatch.setattr(tracking_guard.log, "filters", [read])
    kedro_session_run(project, "search")
    elapsed = time.monotonic() - started
    warnings = [m for m in messages if "is unusable (" in m]
    assert len(warnings) == 1 and reason in warnings[0], warnings
    assert "the run goes on with tracking off" in warnings[0]
    _assert_outputs_written(project)
    assert elapsed < 240  # the search itself takes about 30 s; MLflow's default retries took about 4 minutes


@pytest.mark.slow
def test_a_server_killed_mid_search_costs_seconds_and_every_output_is_written(ingested_project, tmp_path):
    project = ingested_project
    with mlflow_server(tmp_path / "server.db", "--artifacts-destination", str(tmp_path / "artifacts")) as (server, url):
        _use_tracking_uri(project, url)
        log_path = project / "data/07_model_output/trial_logs/bayesian.jsonl"
        run = subprocess.Popen(
            [sys.executable, "-m", "kedro", "run", "--pipelines=search", "--env=test"], cwd=project,
            env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while not (log_path.exists() and read_log(log_path)[1]):
            assert time.monotonic() < deadline and run.poll() is None, "the search did not start"
            time.sleep(0.1)
        os.killpg(server.pid, signal.SIGKILL)  # the server dies after the first fit is logged
        killed = time.monotonic()
        output, _ = run.communicate(timeout=400)
        after_kill = time.monotonic() - killed
    out = "".join(output.split())
    assert run.returncode == 0, output[-4000:]
    assert "MLflowtrackingfailedwhilelogging" in out or "isunusable(" in out
    _assert_outputs_written(project)
    assert after_kill < 240  # each MLflow call gives up within seconds, not four minutes


def test_tracking_that_fails_mid_run_closes_the_sessions_run_and_leaves_the_users(tmp_path):
    import mlflow

    from deepaug_pipeline.tracking_guard import GuardedMlflowHook

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        guard = GuardedMlflowHook()
        users_run = mlflow.start_run(experiment_id=mlflow.create_experiment("guard")).info.run_id
        guard._users_run = users_run
        ours = mlflow.start_run(nested=True).info.run_id
        mlflow.start_run(run_id=ours, nested=True)  # a threaded runner's re-opening: listed twice
        guard._disable("the server went away")
        assert mlflow.active_run().info.run_id == users_run and mlflow.get_run(ours).info.status == "FAILED"
        # With the server gone every end_run raises; each still takes its run off the list, so all of ours go.
        ours = mlflow.start_run(nested=True).info.run_id
        mlflow.start_run(run_id=ours, nested=True)
        guard.enabled = True
        with pytest.MonkeyPatch.context() as gone:
            gone.setattr(mlflow.MlflowClient, "set_terminated", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("refused")))
            guard._disable("the server went away")
        assert mlflow.active_run().info.run_id == users_run
        mlflow.end_run()
        assert mlflow.active_run() is None
    finally:
        mlflow.set_tracking_uri(None)


def test_a_failing_set_up_inside_a_run_the_user_opened_leaves_that_run_open(tmp_path, monkeypatch):
    """The user's run was known only at before_pipeline_run: a set-up that failed before then ended it as FAILED."""
    import types

    import mlflow

    from deepaug_pipeline.tracking_guard import GuardedMlflowHook

    class NoMlflowYml(dict):
        config_patterns: dict = {}

        def __getitem__(self, key):
            raise KeyError(key)

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        users_run = mlflow.start_run(experiment_id=mlflow.create_experiment("mine")).info.run_id
        guard = GuardedMlflowHook()
        monkeypatch.setattr(guard._inner, "after_context_created", lambda context: (_ for _ in ()).throw(PermissionError("denied")))
        guard.after_context_created(types.SimpleNamespace(config_loader=NoMlflowYml(), project_path=str(tmp_path)))
        assert not guard.enabled  # tracking off, said once
        assert mlflow.active_run().info.run_id == users_run and mlflow.get_run(users_run).info.status == "RUNNING"
        mlflow.end_run()
    finally:
        mlflow.set_tracking_uri(None)


@pytest.mark.slow
def test_a_session_inside_a_run_the_user_opened_logs_into_it_and_leaves_it_theirs(project):
    """A notebook that opened a run, then runs a session: kedro-mlflow must see that run (it looks in the thread the
    guard's bounded set-up ran on), log the session's parameters into it, leave it open and listed once (its
    re-opening per node pushed a copy onto MLflow's per-thread run list each time), and keep the user's store."""
    import mlflow

    users_store = f"sqlite:///{project / 'users.db'}"
    mlflow.set_tracking_uri(users_store)
    try:
        users_run = mlflow.start_run(experiment_id=mlflow.create_experiment("mine")).info.run_id
        with contextlib.chdir(project):
            bootstrap_project(project)
            with KedroSession.create(project_path=project, env="test") as session:
                session.run(pipeline_names=["ingest"])
        assert mlflow.get_tracking_uri() == users_store
        assert mlflow.active_run() is not None and mlflow.active_run().info.run_id == users_run
        run = mlflow.get_run(users_run)
        assert run.info.status == "RUNNING" and run.data.params["ingest.train_set_size"] == "200"
        assert not mlflow.MlflowClient().search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{users_run}'")
        mlflow.end_run()
        assert mlflow.active_run() is None  # listed once: one end_run closes it
        assert mlflow.get_run(users_run).info.status == "FINISHED"
        # Without a run of the user's, the session's own run is closed at its end (none is left to nest the next under).
        with contextlib.chdir(project):
            with KedroSession.create(project_path=project, env="test") as session:
                session.run(pipeline_names=["ingest"])
        assert mlflow.active_run() is None
        ours = mlflow.search_runs(experiment_names=["deepaug_pipeline"], output_format="list")
        assert [(r.info.status, r.data.tags.get("mlflow.parentRunId")) for r in ours] == [("FINISHED", None)]
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)


@pytest.mark.parametrize("start_in", ["conf", "data"])
def test_a_run_started_in_a_subdirectory_tracks_into_the_projects_store(project, start_in):
    """base's sqlite:///mlflow.db is relative: kedro-mlflow would open it (and MLflow its ./mlruns artifact root) in
    the directory ``kedro run`` started from, where the review UI, started in the project, never looks."""
    import contextlib

    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    start = project / start_in
    (project / "mlflow.db").unlink()  # the run creates the store, where it belongs
    inherited = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with contextlib.chdir(start):
            bootstrap_project(project)
            with KedroSession.create(project_path=project, env="test") as session:
                context = session.load_context()  # kedro-mlflow sets up tracking and the experiment here
                assert mlflow.get_tracking_uri() == f"sqlite:///{project / 'mlflow.db'}"
                # The trial and evaluation logs too: a run started elsewhere resumes the project's logs.
                for logs in ("trial_logs", "evaluation_logs"):
                    assert context.catalog.load(logs).directory == project / "data" / "07_model_output" / logs
                experiment = mlflow.get_experiment_by_name("deepaug_pipeline")
    finally:
        mlflow.set_tracking_uri(None)
        if inherited is not None:
            os.environ["MLFLOW_TRACKING_URI"] = inherited
    assert (project / "mlflow.db").is_file()
    assert experiment.artifact_location == (project / "mlruns" / "deepaug_pipeline").as_uri()
    assert sorted(p.name for p in start.iterdir() if "mlflow" in p.name or p.name == "mlruns") == []
