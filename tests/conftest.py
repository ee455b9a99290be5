"""Shared fixtures: tiny real-format datasets and a throw-away copy of the Kedro project."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
RAW_FASHION = REPO / "data" / "01_raw" / "fashion-mnist"
# The search space of conf/test, for the searches run outside Kedro: a policy graph over these traces in a fraction
# of the whole table's time (the unit tests apply every op, and the notebook's search traces the whole space).
TEST_OPS: list[str] = yaml.safe_load((REPO / "conf" / "test" / "parameters_search.yml").read_text())["search"]["ops"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One pytest-xdist worker per core (pyproject.toml): each worker's TensorFlow, and the `kedro run`s and Dask workers
# its tests start (they inherit the environment), runs on its share of the cores instead of a thread pool per core
# in every worker (on 2 cores, two paired rounds on clean copies: 329 and 361 s against 387 and 435 s without the
# cap). Set before any test module imports TensorFlow, which reads these once; `-n 0` leaves them alone.
if _workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    _share = str(max(1, _cores // _workers))
    for _variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(_variable, _share)


@pytest.hookimpl(trylast=True)  # after -k / -m have deselected: the blocks are those of the tests that run
def pytest_collection_modifyitems(config, items) -> None:
    """Under pytest-xdist, each worker starts on its share of the slow tests (15 s or more each, most of the suite's
    time) and ends on quick ones, so a worker is seldom left running a kill test alone at the end. The worksteal scheduler
    first hands the workers contiguous blocks of the collection, sized as below; it steals from a queue's end, so
    quick tests are what moves between workers. Every worker collects, and orders, the same list. (--lf / --ff reorder
    after this; the order then is theirs.)"""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers < 2:
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    quick = [item for item in items if not item.get_closest_marker("slow")]
    ordered = []
    for worker in range(workers):
        size = (len(items) - len(ordered)) // (workers - worker)  # xdist's split: what is left, over the workers left
        own_slow = slow[worker::workers]
        taken = max(0, size - len(own_slow))
        ordered += own_slow + quick[:taken]
        del quick[:taken]
    items[:] = ordered + quick  # the last block takes every quick test left: quick is empty, and no test is lost


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(backend_store: Path, *options: str, cwd: Path | None = None):
    """``mlflow server`` over the sqlite store ``backend_store`` on a free port, as a user starts it (its own process
    group: the server runs uvicorn in a child process); yields ``(process, url)`` once ``/health`` answers, and ends
    the group afterwards. ``/health`` is polled without retries: MLflow's client retries a refused connection with
    a back-off, which told a started server up to 6 s late."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{backend_store}",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1", *options],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"mlflow server exited with {proc.returncode}"
            assert time.monotonic() < deadline, "mlflow server did not start within 120 s"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        yield proc, url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as a gzipped IDX file, the real MNIST on-disk format."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def make_images(n: int, n_classes: int = 4, size: tuple[int, int] = (12, 12), channels: int = 1, seed: int = 0):
    """Class-dependent random uint8 images and balanced labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.integers(0, 256, size=(n, *size, channels), dtype=np.uint8)
    return x, y.astype(np.int64)


def write_idx_folder(folder: Path, n_train: int = 120, n_test: int = 40, n_classes: int = 4, size=(12, 12)) -> Path:
    """A folder holding the four MNIST-format files, tiny."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        x, y = make_images(n, n_classes, size, seed=n)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", x[..., 0])
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", y.astype(np.uint8))
    return folder


@pytest.fixture(scope="session")
def mlflow_store_template(tmp_path_factory) -> Path:
    """An empty MLflow sqlite store, made once per test process: MLflow's schema migrations took 5 s of every run in
    a fresh project on 2 cores (12 s under load), a minute of the suite's time."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow_store")
    with contextlib.chdir(folder):  # MLflow roots its Default experiment's artifacts in the working directory
        MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder


@pytest.fixture
def project(tmp_path: Path, mlflow_store_template: Path) -> Path:
    """A copy of the Kedro project (conf, pyproject) in a temp dir, with the embedded raw data linked in and an empty
    MLflow store, as the first ``kedro run`` in the project would have created it."""
    return new_project(tmp_path / "project", mlflow_store_template)


@pytest.fixture(scope="session")
def ingested_splits(tmp_path_factory, mlflow_store_template: Path) -> Path:
    """conf/test's splits of the embedded data (``data/05_model_input``), ingested once per test process."""
    root = new_project(tmp_path_factory.mktemp("ingested") / "project", mlflow_store_template)
    kedro_session_run(root, "ingest")
    return root / "data" / "05_model_input"


@pytest.fixture
def ingested_project(project: Path, ingested_splits: Path) -> Path:
    """``project`` as a second run finds it: conf/test's splits are on disk, so its searches leave ingest out. For
    the tests of what a search does, not of ingest (loading and splitting the embedded data took 3 s a run).
    ``copytree`` copies each file's modification time, which the reuse check compares with the summary's."""
    shutil.copytree(ingested_splits, project / "data" / "05_model_input")
    return project


def new_project(root: Path, mlflow_store_template: Path) -> Path:
    """``project``'s copy of the Kedro project, made at ``root``."""
    root.mkdir()
    shutil.copy(mlflow_store_template / "mlflow.db", root / "mlflow.db")
    with contextlib.closing(sqlite3.connect(root / "mlflow.db")) as db, db:
        db.execute("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)",
                   (str(mlflow_store_template), str(root)))  # fmt: skip
    shutil.copytree(REPO / "conf", root / "conf", ignore=shutil.ignore_patterns("credentials.yml"))
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPO / name, root / name)
    (root / "src").mkdir()  # the package itself is installed; kedro only checks that src/ exists
    (root / "conf" / "local").mkdir(exist_ok=True)
    (root / "data" / "01_raw").mkdir(parents=True)
    (root / "data" / "01_raw" / "fashion-mnist").symlink_to(RAW_FASHION)
    return root


def kedro_run(project_root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``kedro run`` in ``project_root`` as a user would, capturing its output."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "kedro", "run", *args],
        cwd=project_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def search_params(**search) -> str:
    """``--params=search.k=v,search.child.k=v,...``: the command-line form of the ``params={"search": search}`` an
    in-process run takes."""

    def flat(prefix: str, section: dict) -> list[str]:
        return [item for k, v in section.items()
                for item in (flat(f"{prefix}.{k}", v) if isinstance(v, dict) else [f"{prefix}.{k}={str(v).lower() if isinstance(v, bool) else v}"])]  # fmt: skip

    return "--params=" + ",".join(flat("search", search))


def kedro_session_run(project_root: Path, pipeline: str, env: str = "test", params: dict | None = None, **run_args) -> None:
    """Run ``pipeline`` in this process through a KedroSession, as ``kedro run`` does but without starting Python and
    importing TensorFlow again: for tests of what a run writes, where the process boundary (kill -9, the console, the
    exit code) is not what is tested. A failed run raises here. ``params`` are nested, as ``--params`` become; the
    runner is ``kedro run``'s in this project unless ``runner`` is given."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from deepaug_pipeline.runner import SplitsReusingRunner

    run_args.setdefault("runner", SplitsReusingRunner())

    inherited = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        # As `kedro run` in the project root: Kedro anchors the catalog's paths and the guard the sqlite store, but
        # MLflow still places its Default experiment's artifact root in the working directory.
        with contextlib.chdir(project_root):
            bootstrap_project(project_root)
            with KedroSession.create(project_path=project_root, env=env, runtime_params=params) as session:
                session.run(pipeline_names=[pipeline], **run_args)
    finally:  # kedro-mlflow sets MLflow's URI for the process (and its environment): leave neither to later tests
        import mlflow

        mlflow.set_tracking_uri(None)
        if inherited is not None:
            os.environ["MLFLOW_TRACKING_URI"] = inherited


def squashed_output(result: subprocess.CompletedProcess) -> str:
    """stdout+stderr without any whitespace: rich wraps long lines, even inside paths."""
    return "".join((result.stdout + result.stderr).split())


CHART_MIN_SIDE = 300  # the charts are 7 × 3.8-4 inches at 100 dpi
GRID_MIN_SIDE = 100  # a sample grid of an empty policy is one row of originals, about 150 px tall


def assert_real_png(path: Path, min_side: int = CHART_MIN_SIDE) -> None:
    """``path`` is a PNG at least ``min_side`` pixels on each side whose pixels vary: a drawn figure, not a blank
    canvas or a stub (its size on disk says neither)."""
    with Image.open(path) as image:
        assert image.format == "PNG", f"{path.name}: {image.format}, not PNG"
        assert min(image.size) >= min_side, f"{path.name}: {image.size[0]}×{image.size[1]} px, under {min_side} on a side"
        spread = float(np.asarray(image.convert("RGB"), dtype=np.float32).std())
    assert spread > 5, f"{path.name}: blank (pixel std {spread:.2f} on 0-255)"


def mlflow_runs(project_root: Path) -> tuple[list, list]:
    """(parent runs, nested child runs) of the project's experiment in its sqlite store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project_root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("deepaug_pipeline").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]
