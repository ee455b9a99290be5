"""Shared helpers for the hand-run benchmarks: the machine's dense rate, medians, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]


def machine() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "tensorflow": tf.__version__,
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def timed(fn, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Wall seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def median(xs) -> float:
    return float(statistics.median(xs))


def dense_rate_gflops(repeats: int = 5) -> dict:
    """The machine's fp32 rate on a large 3×3 convolution and a large matmul (GFLOP/s, medians)."""
    x = tf.random.uniform([32, 32, 32, 128])
    k = tf.random.uniform([3, 3, 128, 128])
    conv = tf.function(lambda: tf.reduce_sum(tf.nn.conv2d(x, k, 1, "SAME")))
    conv_flops = 2 * 32 * 32 * 32 * 128 * 128 * 9
    a = tf.random.uniform([2048, 2048])
    mm = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
    mm_flops = 2 * 2048**3
    conv_s = median(timed(lambda: conv().numpy(), repeats))
    mm_s = median(timed(lambda: mm().numpy(), repeats))
    rates = {"conv_gflops": conv_flops / conv_s / 1e9, "matmul_gflops": mm_flops / mm_s / 1e9}
    rates["peak_gflops"] = max(rates.values())
    return rates


def train_step_rate(trainer, shape, batch: int, repeats: int = 5) -> float:
    """Images/s of ``trainer``'s steady-state training steps (no input pipeline, no validation)."""
    x, y = tf.random.uniform((batch, *shape)), tf.zeros((batch,), tf.int32)
    step = tf.function(trainer._train_step)
    secs = median(timed(lambda: [step(x, y) for _ in range(20)][-1][0].numpy(), repeats))
    return 20 * batch / secs


def load_fashion_subset(n_train: int = 2000, seed: int = 0):
    """Stratified Fashion-MNIST subset and the seed validation pool (the rest of TRAIN), as the search sees them."""
    from deepaug_pipeline.config import IngestConfig, SourceConfig
    from deepaug_pipeline.ingest import load_source, split_dataset, validate_source

    src = validate_source(load_source(SourceConfig(source="idx", path=str(REPO / "data/01_raw/fashion-mnist"))))
    splits = split_dataset(src, IngestConfig(train_set_size=n_train), seed)
    return splits


def write_results(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
    print(json.dumps(data, indent=2, default=str))
    print(f"written to {path}")
    return path


__all__ = ["REPO", "dense_rate_gflops", "load_fashion_subset", "machine", "median", "np", "tf", "timed", "train_step_rate", "write_results"]
