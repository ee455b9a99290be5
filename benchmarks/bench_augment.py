"""Augmentation throughput: a 5-sub-policy policy in graph vs a per-image NumPy loop vs the child's training rate.

Run by hand: ``python benchmarks/bench_augment.py`` → ``benchmarks/results/augment.json``.
Targets (issue 3): in-graph ≥ 20× the child's training throughput; the child trains with the policy at
≥ 90% of its throughput without augmentation, end to end through the real input pipeline.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import dense_rate_gflops, load_fashion_subset, median, np, tf, timed, train_step_rate, write_results  # noqa: E402
from scipy import ndimage  # noqa: E402

from deepaug_pipeline.augment import ops as ops_lib  # noqa: E402
from deepaug_pipeline.augment.policy import Policy, apply_policy  # noqa: E402
from deepaug_pipeline.ingest import LabelledImages  # noqa: E402
from deepaug_pipeline.models import build_model  # noqa: E402
from deepaug_pipeline.models.training import FitSettings, Trainer, no_augmentation  # noqa: E402

BATCH = 128
REPEATS = 5
# The prototype's policy (rotate, blur, noise, contrast, cutout), so the NumPy loop can do the same ops.
PROTOTYPE = Policy.from_pairs(
    [
        [("rotate", 0.5), ("gaussian-blur", 0.5)],
        [("additive-gaussian-noise", 0.4), ("contrast", 0.6)],
        [("cutout", 0.5), ("rotate", 0.3)],
        [("gaussian-blur", 0.3), ("additive-gaussian-noise", 0.3)],
        [("contrast", 0.4), ("cutout", 0.3)],
    ]
)
# A search-like policy over DeepAugment's op types, dispatched over the whole 19-op grayscale space.
SEARCH_LIKE = Policy.from_pairs(
    [
        [("crop", 0.4), ("sharpen", 0.5)],
        [("shear", 0.5), ("coarse-dropout", 0.3)],
        [("translate-x", 0.3), ("fog", 0.6)],
        [("emboss", 0.4), ("horizontal-flip", 1.0)],
        [("gamma-contrast", 0.5), ("coarse-salt-pepper", 0.3)],
    ]
)
HEAVY = ["equalize", "histogram-equalize", "elastic-transform", "perspective-transform", "clouds", "gaussian-blur"]


def numpy_policy(images: np.ndarray, policy: Policy, rng: np.random.Generator) -> np.ndarray:
    """The same ops, per image, in plain Python/NumPy/SciPy (what an imgaug-style loop costs)."""
    out = np.empty_like(images)
    for i, img in enumerate(images.astype(np.float32) / 255.0):
        if rng.uniform() >= policy.p_none:
            sub = policy.sub_policies[rng.integers(len(policy.sub_policies))]
            for op in sub.operations:
                img = _numpy_op(img, op.op, op.magnitude, rng)
        out[i] = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return out


def _numpy_op(img: np.ndarray, name: str, m: float, rng: np.random.Generator) -> np.ndarray:
    spec = ops_lib.OPS[ops_lib.OP_INDEX[name]]
    p = spec.low + (spec.high - spec.low) * m
    h, w = img.shape[:2]
    if name == "rotate":
        return ndimage.rotate(img, rng.choice([-1, 1]) * p, axes=(0, 1), reshape=False, order=1, mode="constant")
    if name == "gaussian-blur":
        return ndimage.gaussian_filter(img, sigma=(p * min(h, w), p * min(h, w), 0))
    if name == "additive-gaussian-noise":
        return np.clip(img + rng.normal(0, p, img.shape), 0, 1)
    if name == "contrast":
        mean = img.mean()
        return np.clip(mean + (1 + rng.choice([-1, 1]) * p) * (img - mean), 0, 1)
    if name == "cutout":
        half = p * min(h, w) / 2
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        img = img.copy()
        img[max(0, int(cy - half)) : int(cy + half), max(0, int(cx - half)) : int(cx + half)] = 0.5
        return img
    raise KeyError(name)


def graph_rate(images: np.ndarray, policy: Policy, available) -> float:
    x = tf.constant(images)
    tensors = policy.tensors()
    fn = tf.function(lambda b, s: ops_lib.from_unit(apply_policy(ops_lib.to_unit(b), tensors, s, available), tf.uint8))
    seeds = [tf.constant([1, i], tf.int64) for i in range(20)]
    secs = timed(lambda: [fn(x, s) for s in seeds][-1].numpy(), REPEATS)
    return 20 * len(images) / median(secs)


def single_op_rate(images: np.ndarray, name: str) -> float:
    x = tf.constant(images)
    idx = ops_lib.OP_INDEX[name]
    ids = tf.fill([len(images)], idx)
    mags = tf.fill([len(images)], 0.7)
    fn = tf.function(lambda b, s: ops_lib.apply_ops(ops_lib.to_unit(b), ids, mags, s, [idx]))
    seeds = [tf.constant([1, i], tf.int64) for i in range(20)]
    return 20 * len(images) / median(timed(lambda: [fn(x, s) for s in seeds][-1].numpy(), REPEATS))


def child_rates(splits, policy: Policy, available, epochs: int = 5) -> dict:
    """Steady-state training img/s of the default child, without and with the policy, through Trainer.fit."""
    subset = splits.search_subset
    val = LabelledImages(splits.seed_validation_pool.x[:1000], splits.seed_validation_pool.y[:1000])
    shape, n_classes = subset.x.shape[1:], 10
    settings = FitSettings(epochs=epochs, batch_size=128, learning_rate=0.002)
    plain = Trainer(build_model("fastcnn", shape, n_classes), subset, settings, no_augmentation)
    aug = Trainer(
        build_model("fastcnn", shape, n_classes), subset, settings,
        lambda x, pt, s: apply_policy(x, pt, s, available),
    )  # fmt: skip
    tensors = policy.tensors()
    # Interleave the two so machine noise hits both alike; each fit also validates 1000 images per epoch.
    plain_s, aug_s = [], []
    for _ in range(REPEATS + 1):
        plain.reset()
        t = time.perf_counter()
        plain.fit((), 1, val)
        plain_s.append(time.perf_counter() - t)
        aug.reset()
        t = time.perf_counter()
        aug.fit(tensors, 1, val)
        aug_s.append(time.perf_counter() - t)
    n = len(subset) * epochs
    return {
        "train_steps_img_per_s": train_step_rate(plain, shape, 128, REPEATS),
        "fit_without_aug_s": median(plain_s[1:]),
        "fit_with_policy_s": median(aug_s[1:]),
        "fit_images": n,
        "with_policy_over_without": median(plain_s[1:]) / median(aug_s[1:]),
    }


def main() -> None:
    splits = load_fashion_subset()
    gray = splits.search_subset.x[:BATCH]
    rgb = np.random.default_rng(0).integers(0, 256, (BATCH, 32, 32, 3), dtype=np.uint8)
    search_ops_gray = [ops_lib.OP_INDEX[n] for n in ops_lib.search_ops(1)]
    results: dict = {"batch": BATCH, "repeats": REPEATS, "dense_rate": dense_rate_gflops()}
    results["graph_img_per_s"] = {
        "prototype_28x28x1": graph_rate(gray, PROTOTYPE, PROTOTYPE.op_indices()),
        "prototype_32x32x3": graph_rate(rgb, PROTOTYPE, PROTOTYPE.op_indices()),
        "search_like_28x28x1_over_search_space": graph_rate(gray, SEARCH_LIKE, search_ops_gray),
        "search_like_32x32x3_over_search_space": graph_rate(rgb, SEARCH_LIKE, [ops_lib.OP_INDEX[n] for n in ops_lib.search_ops(3)]),
    }
    rng = np.random.default_rng(0)
    results["numpy_loop_img_per_s"] = {
        "prototype_28x28x1": BATCH / median(timed(lambda: numpy_policy(gray, PROTOTYPE, rng), REPEATS)),
        "prototype_32x32x3": BATCH / median(timed(lambda: numpy_policy(rgb, PROTOTYPE, rng), REPEATS)),
    }
    results["single_op_img_per_s_28x28x1"] = {name: single_op_rate(gray, name) for name in HEAVY}
    results["child"] = child_rates(splits, SEARCH_LIKE, search_ops_gray)
    child = results["child"]["train_steps_img_per_s"]
    results["ratios"] = {
        "graph_over_numpy_28": results["graph_img_per_s"]["prototype_28x28x1"] / results["numpy_loop_img_per_s"]["prototype_28x28x1"],
        "graph_over_child_training_28_prototype": results["graph_img_per_s"]["prototype_28x28x1"] / child,
        "graph_over_child_training_28_search_like": results["graph_img_per_s"]["search_like_28x28x1_over_search_space"] / child,
        "child_throughput_with_policy_vs_without": results["child"]["with_policy_over_without"],
    }
    results["targets"] = {
        "graph_at_least_20x_child": results["ratios"]["graph_over_child_training_28_search_like"] >= 20,
        "training_with_policy_at_least_90pct": results["ratios"]["child_throughput_with_policy_vs_without"] >= 0.9,
    }
    write_results("augment", results)


if __name__ == "__main__":
    main()
