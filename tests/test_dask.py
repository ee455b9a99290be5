"""Parallel trials on a Dask LocalCluster with 2 workers, through `kedro run` like a user."""

from __future__ import annotations

import functools
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from deepaug_pipeline.config import ConfigError, SearchConfig, parse_config
from deepaug_pipeline.data import LabelledImages
from deepaug_pipeline.run_log import TrialLogStore, read_log
from deepaug_pipeline.search import run as search_run
from deepaug_pipeline.search.executors import DaskExecutor, ExecutorError, local_worker_environment
from deepaug_pipeline.search.records import FitOutcome, FitRequest
from deepaug_pipeline.search.run import run_search
from tests.conftest import make_images, mlflow_runs, search_params

DASK = {"executor": "dask", "n_workers": 2, "threads_per_worker": 1}


def _fits_overlapped_on_two_workers(records: list[dict]) -> bool:
    """Two fits ran side by side on different workers: the executor used both slots (the worker names alone would
    not say so once a killed worker's replacement adds a name)."""
    return any(a["worker"] != b["worker"] and a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]
               for a, b in itertools.combinations(records, 2))  # fmt: skip


@pytest.mark.slow
def test_without_an_address_the_search_runs_on_its_own_cluster_on_both_workers_and_closes_it(tmp_path):
    """The executor's own LocalCluster (``address`` unset, as the default config runs): started in the worker
    environment, fits on both workers, every fit logged once, and closed with the search, leaving this process's
    environment and children as they were."""
    import psutil

    x, y = make_images(200, 4)
    child = {"model": "fastcnn", "model_options": {"width": 8, "dense": 16}, "epochs": 2, "batch_size": 25,
             "last_n_epochs": 1, "validation_sample_size": 50}  # fmt: skip
    cfg = SearchConfig(**DASK, iterations=2, opt_initial_points=2, base_augmentation="standard", noise_seeds=2, reevaluate_top=1,
                       reevaluate_seeds=2, reevaluate_stop_early=False, track_sample_grids=False, child=child)  # fmt: skip
    summary = {"image_shape": [12, 12, 1], "n_classes": 4, "sizes": {}}
    # Dask's __DASK_PARENT_PID only lets children set their process titles; every other variable is as it was.
    environment = {k: v for k, v in os.environ.items() if k != "__DASK_PARENT_PID"}
    result = run_search(LabelledImages(x[:100], y[:100]), LabelledImages(x[100:], y[100:]), summary, TrialLogStore(tmp_path), cfg, seed=0)
    trials = read_log(Path(result.log_path))[1]
    keys = [t["key"] for t in trials]
    assert len(keys) == len(set(keys)) == 2 + 2 + 2 * (1 + 1)  # baseline, trials, re-evaluation of the best on 2 seeds
    # Both of its workers ran fits. Not whether two fits overlapped in time: on a loaded machine one worker can finish
    # its tiny fit before the other has imported TensorFlow (seen beside a benchmark).
    assert all(t["status"] == "ok" for t in trials) and len({t["worker"] for t in trials}) == 2
    assert {k: v for k, v in os.environ.items() if k != "__DASK_PARENT_PID"} == environment
    # No worker or nanny left running; multiprocessing's resource tracker lives as long as this process, by design.
    left = [p.cmdline() for p in psutil.Process().children(recursive=True) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not [c for c in left if "multiprocessing.resource_tracker" not in " ".join(c)], left


@pytest.mark.slow
def test_a_worker_killed_mid_search_loses_nothing_and_logs_every_trial_once_nested_under_one_parent(ingested_project):
    """The search runs on a cluster the test holds, so the scheduler says which worker is running a fit: that one is
    killed (its nanny starts a new one), after two fits are logged. The fit it took is run again, and logged (in the
    trial log, the tables and MLflow) once, like every other."""
    project = ingested_project
    from distributed import Client, LocalCluster

    log_path = project / "data" / "07_model_output" / "trial_logs" / "bayesian.jsonl"
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    with local_worker_environment(), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:  # fmt: skip
        params = {**DASK, "address": cluster.scheduler_address, "iterations": 4, "child": {"epochs": 4}}
        proc = subprocess.Popen(
            [sys.executable, "-m", "kedro", "run", "--pipelines=search", "--env=test",
             search_params(**params)],
            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        killed = None
        deadline = time.time() + 300
        while time.time() < deadline and killed is None and proc.poll() is None:
            if log_path.exists() and len(read_log(log_path)[1]) >= 2:
                fitting = [w for w, keys in client.processing().items() if any(str(k).startswith("run_on_worker") for k in keys)]
                if fitting:
                    killed = client.run(os.getpid, workers=fitting[:1])[fitting[0]]
                    os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=600)
    assert killed is not None, "no worker was running a fit"
    assert proc.returncode == 0, out[-3000:]
    trials = read_log(log_path)[1]
    keys = [t["key"] for t in trials]
    assert len(keys) == len(set(keys)) == 2 + 4 + 2 * (1 + 2)
    assert sorted(t["trial_id"] for t in trials if t["stage"] == "search") == list(range(1, 5))
    assert all(t["status"] in ("ok", "failed") for t in trials)
    assert _fits_overlapped_on_two_workers(trials)
    # Same outputs, same format as local mode.
    table = pd.read_csv(project / "data" / "07_model_output" / "trials.csv")
    assert table["key"].tolist() == keys
    top = json.loads((project / "data" / "07_model_output" / "top_policies.json").read_text())
    assert len(top["policies"]) == 3 and sum(p["reevaluation"] is not None for p in top["policies"]) == 2
    parents, children = mlflow_runs(project)
    assert len(parents) == 1 and len(children) == len(keys)
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert sorted(c.data.tags["key"] for c in children) == sorted(keys)


def test_unreachable_scheduler_fails_fast_with_a_clear_error(tmp_path, monkeypatch):
    data = LabelledImages(*make_images(20, 2))
    start = time.time()
    with pytest.raises(ExecutorError, match=r"cannot reach the Dask scheduler at search.address 'tcp://127.0.0.1:9'"):
        DaskExecutor(data, data, None, "tcp://127.0.0.1:9", 1, 1, connect_timeout=1)
    assert time.time() - start < 30
    # The search connects to the address its config names, not a LocalCluster (nothing listens on the discard port);
    # Dask retries a refused connection until the timeout, so the search's executor is given a short one.
    monkeypatch.setattr(search_run, "DaskExecutor", functools.partial(DaskExecutor, connect_timeout=1))
    cfg = SearchConfig(executor="dask", address="tcp://127.0.0.1:9", child={"validation_sample_size": 10, "batch_size": 10})
    summary = {"image_shape": [12, 12, 1], "n_classes": 2, "sizes": {}}
    with pytest.raises(ExecutorError, match=r"cannot reach the Dask scheduler at search.address 'tcp://127.0.0.1:9'"):
        run_search(data, data, summary, TrialLogStore(tmp_path), cfg, seed=0)


@pytest.fixture
def in_process_cluster(request):
    """A scheduler with in-process worker threads (``request.param`` workers of 2 threads each): the executor's own
    calls against a real scheduler, in a second, with a stand-in for the fit that runs on a worker."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=request.param, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def fake_fit(spec, request, subset, pool, threads):
    if request.seed_index == 9:
        raise ModuleNotFoundError("No module named 'deepaug_pipeline'")  # a worker without the package
    if request.seed_index == 8:
        time.sleep(2)
    return FitOutcome(status="ok", reward=0.5 + request.seed_index / 100)


@pytest.mark.parametrize("in_process_cluster", [2], indirect=True)
def test_a_dask_executor_counts_worker_processes_passes_outcomes_taken_directly_and_raises_worker_errors(in_process_cluster, monkeypatch):
    from deepaug_pipeline.search import executors

    monkeypatch.setattr(executors, "run_on_worker", fake_fit)
    data = LabelledImages(*make_images(20, 2))
    executor = DaskExecutor(data, data, None, in_process_cluster, n_workers=1, threads_per_worker=1)
    try:
        # One fit per worker process at a time: 2 workers of 2 threads are 2 slots, not 4.
        assert executor.slots == 2
        # The density reference's outcome is taken directly; the search's next fits must not get its future.
        reference = FitRequest.baseline("standard", 0, {})
        assert executor.outcome(executor.submit(reference)).reward == 0.5
        running = {executor.submit(FitRequest.baseline("standard", s, {})): s for s in (1, 2)}
        done = [executor.next_done(running) for _ in range(2)]
        assert sorted(running[f] for f in done) == [1, 2]
        # An error on a worker is the error, raised as in this process, not a "lost" fit retried and logged as lost.
        with pytest.raises(ModuleNotFoundError, match="deepaug_pipeline"):
            executor.outcome(executor.submit(FitRequest.baseline("standard", 9, {})))
        cancelled = executor.submit(FitRequest.baseline("standard", 8, {}))
        cancelled.cancel()  # as the scheduler cancels fits whose scattered data a dead worker took with it
        outcome = executor.outcome(cancelled)
        assert outcome.lost and outcome.status == "failed" and "CancelledError" in outcome.reason
    finally:
        executor.close()


@pytest.mark.parametrize("in_process_cluster", [0], indirect=True)
def test_a_scheduler_without_workers_is_named_with_what_to_start(in_process_cluster):
    data = LabelledImages(*make_images(20, 2))
    with pytest.raises(ExecutorError, match=rf"the Dask scheduler at search.address '{in_process_cluster}' has no workers "
                                            rf"after 1 s: start some \(dask worker {in_process_cluster}\)"):  # fmt: skip
        DaskExecutor(data, data, None, in_process_cluster, 1, 1, worker_timeout=1)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1", "foo://host:8786", "host:notaport"])
def test_a_malformed_scheduler_address_is_named(address):
    data = LabelledImages(*make_images(20, 2))
    with pytest.raises(ExecutorError, match=rf"cannot reach the Dask scheduler at search.address '{address}' .*ValueError"):
        DaskExecutor(data, data, None, address, 1, 1, connect_timeout=2)


@pytest.mark.parametrize("search, problem", [
    ({"address": "tcp://host:8786"}, r"'address' is 'tcp://host:8786' but 'executor' is 'local': set executor: dask"),
    ({"address": " ", "executor": "dask"}, r"'address' is empty"),
])  # fmt: skip
def test_an_address_the_search_would_ignore_is_refused(search, problem):
    with pytest.raises(ConfigError, match=rf"bad value for 'search': {problem}"):
        parse_config(SearchConfig, search, "search")
