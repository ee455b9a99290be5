"""TensorFlow device setup, done once per process before any graph is built; TensorFlow's start-up notices kept
off the console."""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

# What TensorFlow's native libraries print while loading, straight to file descriptor 2 and before TensorFlow's own
# logging starts (so TF_CPP_MIN_LOG_LEVEL cannot hide it). Hidden only where no NVIDIA driver is installed, where the
# GPU lines are noise; with one, a failing cuInit is a real problem and everything stays visible.
_START_UP_NOTICE = re.compile("|".join([
    r"oneDNN custom operations are on", r"All log messages before absl::InitializeLog\(\) is called",
    r"This TensorFlow binary is optimized to use available CPU instructions", r"To enable the following instructions:",
    r"Could not find cuda drivers on your machine", r"failed call to cuInit",
]))  # fmt: skip


def _nvidia_driver() -> bool:
    return os.path.exists("/proc/driver/nvidia/version")


@contextmanager
def start_up_notices_filtered() -> Iterator[None]:
    """Run the block with file descriptor 2 captured, then write back every line but TensorFlow's start-up notices
    (errors, warnings and everything else come back, only later). Not where an NVIDIA driver is installed: there
    CUDA's set-up may abort the process, and its last words must reach the console (or a Dask worker's log)."""
    if _nvidia_driver():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True) if not _START_UP_NOTICE.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def configure_tensorflow(threads: int | None = None) -> list[str]:
    """Memory growth on every GPU (so several processes can share one), optional CPU thread caps.

    Returns the GPU names; an empty list means the CPU runs everything. Safe to call twice.
    """
    with start_up_notices_filtered():
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")  # initialises the GPU platform (cuInit)
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # TensorFlow already runs in this process: fine if the GPU grows as asked
            if not (tf.config.experimental.get_memory_growth(gpu) or os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH") == "true"):
                log.warning("TensorFlow started in this process before memory growth could be set on %s: this "
                            "process holds the whole GPU, and another one on it may run out of memory", gpu.name)  # fmt: skip
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, threads // 2))
        except RuntimeError:  # TensorFlow already runs here with other threads (a setting it already has passes)
            running = (tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads())
            log.warning("TensorFlow started in this process before its threads could be capped at %d (it runs with "
                        "intra/inter-op threads %d/%d, 0 meaning every core)", threads, *running)  # fmt: skip
    return [g.name for g in gpus]
