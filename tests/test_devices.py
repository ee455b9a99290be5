"""Device set-up: nothing in the library starts TensorFlow's runtime on import, so the caps still apply after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from deepaug_pipeline.data import LabelledImages
from deepaug_pipeline.search.executors import ExecutorError, local_worker_environ
from tests.conftest import make_images

# A fresh interpreter, as a Dask worker is when it unpickles its first fit: every module of the package, then the caps.
IMPORT_ALL_THEN_CONFIGURE = """
import importlib, json, logging, pkgutil
import deepaug_pipeline
logging.basicConfig(level=logging.WARNING)
names = [m.name for m in pkgutil.walk_packages(deepaug_pipeline.__path__, "deepaug_pipeline.")]
for name in names:
    importlib.import_module(name)
import tensorflow as tf
from deepaug_pipeline.devices import configure_tensorflow
configure_tensorflow(1)
tf.constant(1)  # TensorFlow runs now: asking again for what it runs with (a Dask worker does so per fit) is quiet
configure_tensorflow(1)
print(json.dumps({"modules": len(names), "intra": tf.config.threading.get_intra_op_parallelism_threads(),
                  "inter": tf.config.threading.get_inter_op_parallelism_threads()}))
"""


@pytest.mark.slow
def test_importing_every_module_leaves_the_thread_cap_settable():
    """baselines.py built tensors at import: a Dask worker's ``threads_per_worker`` cap (and a GPU's memory growth)
    then failed silently, and a "1-thread" worker used every core."""
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL_THEN_CONFIGURE], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["modules"] > 40 and (figures["intra"], figures["inter"]) == (1, 1)
    assert "before its threads could be capped" not in result.stderr


def test_a_late_cap_warns_with_the_threads_tensorflow_runs_with(caplog):
    import tensorflow as tf

    from deepaug_pipeline.devices import configure_tensorflow

    tf.constant(1)  # this test process's TensorFlow is running
    intra, inter = tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads()
    configure_tensorflow()  # no cap asked: nothing to say
    assert "could be capped" not in caplog.text
    configure_tensorflow(intra + 3)
    assert f"before its threads could be capped at {intra + 3} (it runs with intra/inter-op threads {intra}/{inter}" in caplog.text


def test_local_dask_workers_keep_glibcs_mmap_threshold_and_dasks_other_settings():
    import dask
    import distributed  # noqa: F401 - its config defaults

    default = dask.config.get("distributed.nanny.pre-spawn-environ")
    assert "MALLOC_TRIM_THRESHOLD_" in default  # what Dask sets, and what made a worker's fit 2-4 times slower
    environ = local_worker_environ()
    assert "MALLOC_TRIM_THRESHOLD_" not in environ
    assert environ == {k: v for k, v in default.items() if k != "MALLOC_TRIM_THRESHOLD_"} and environ["OMP_NUM_THREADS"] == 1


def test_the_executors_cluster_starts_without_the_trim_threshold_even_if_this_process_has_it(monkeypatch):
    """What the LocalCluster's nannies see when they spawn workers: Dask's pre-spawn environment and this process's
    own (a default LocalCluster earlier in the process writes the threshold into it). What the nannies write into
    this process's environment does not outlive the cluster."""
    import distributed

    from deepaug_pipeline.search import executors

    seen = {}

    class RecordingCluster:  # stands in for LocalCluster at the moment it would spawn its workers
        def __init__(self, **kwargs):
            import dask

            seen["pre_spawn"] = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
            seen["process"] = os.environ.get("MALLOC_TRIM_THRESHOLD_")
            seen["allowed_failures"] = dask.config.get("distributed.scheduler.allowed-failures")
            # as a nanny does before it spawns (Dask adds its PYTHONHASHSEED to the pre-spawn variables)
            os.environ.update({**{k: str(v) for k, v in seen["pre_spawn"].items()}, "PYTHONHASHSEED": "6640"})
            raise OSError("recorded")  # the executor's start-up error path, which must restore the environment too

    monkeypatch.setattr(distributed, "LocalCluster", RecordingCluster)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    x, y = make_images(20, 2)
    with pytest.raises(ExecutorError):
        executors.DaskExecutor(LabelledImages(x, y), LabelledImages(x, y), None, None, 2, 1)
    assert "MALLOC_TRIM_THRESHOLD_" not in seen["pre_spawn"] and seen["pre_spawn"]["OMP_NUM_THREADS"] == 1
    assert seen["process"] is None and seen["allowed_failures"] == 0
    # the process's own settings are back once the cluster is gone, and what the nanny added is gone with it
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536" and os.environ["OMP_NUM_THREADS"] == "2"
    assert "MKL_NUM_THREADS" not in os.environ and "PYTHONHASHSEED" not in os.environ


def test_start_up_notices_are_hidden_only_where_no_nvidia_driver_is_installed(capfd, monkeypatch):
    """Captured, the last words of a process that aborts during CUDA's set-up were lost: on a machine with a driver
    everything goes straight through."""
    from deepaug_pipeline import devices

    monkeypatch.setattr(devices, "_nvidia_driver", lambda: False)
    with devices.start_up_notices_filtered():
        os.write(2, b"I0000 oneDNN custom operations are on.\nE0000 failed call to cuInit: no driver\nF0000 real problem\n")
    err = capfd.readouterr().err
    assert "real problem" in err and "oneDNN" not in err and "cuInit" not in err
    monkeypatch.setattr(devices, "_nvidia_driver", lambda: True)
    with devices.start_up_notices_filtered():
        os.write(2, b"E0000 failed call to cuInit: CUDA_ERROR_NO_DEVICE\n")
        assert "failed call to cuInit: CUDA_ERROR_NO_DEVICE" in capfd.readouterr().err  # at once, inside the block
