"""TensorFlow device setup, done once per process before any graph is built."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def configure_tensorflow(threads: int | None = None) -> list[str]:
    """Memory growth on every GPU (so several processes can share one), optional CPU thread caps.

    Returns the GPU names; an empty list means the CPU runs everything. Safe to call twice.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: the setting cannot change any more
            pass
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, threads // 2))
        except RuntimeError:
            log.debug("TensorFlow threads already fixed for this process")
    return [g.name for g in gpus]
