"""Device set-up: nothing in the library starts TensorFlow's runtime on import, so the caps still apply after it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deepaug_pipeline.search.executors import local_worker_environ

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


def test_a_late_cap_warns_unless_tensorflow_already_runs_as_asked(caplog):
    import tensorflow as tf

    from deepaug_pipeline.devices import configure_tensorflow

    tf.constant(1)  # this test process's TensorFlow is running
    running = tf.config.threading.get_intra_op_parallelism_threads()
    configure_tensorflow(running or None)  # as asked (or no cap asked): nothing to say
    assert "could be capped" not in caplog.text
    configure_tensorflow(running + 3)
    assert f"before its threads could be capped at {running + 3}" in caplog.text


def test_local_dask_workers_keep_glibcs_mmap_threshold_and_dasks_other_settings():
    import dask
    import distributed  # noqa: F401 - its config defaults

    default = dask.config.get("distributed.nanny.pre-spawn-environ")
    assert "MALLOC_TRIM_THRESHOLD_" in default  # what Dask sets, and what made a worker's fit 2-4 times slower
    environ = local_worker_environ()
    assert "MALLOC_TRIM_THRESHOLD_" not in environ
    assert environ == {k: v for k, v in default.items() if k != "MALLOC_TRIM_THRESHOLD_"} and environ["OMP_NUM_THREADS"] == 1
