"""Augmentation throughput against training: in graph vs a per-image NumPy loop, and whole fits with and without it.

Run by hand: ``python benchmarks/bench_augment.py`` → ``benchmarks/results/augment.json``.
Targets (issues 3 and 15, 2 CPU cores): base crop + flip then a search-space policy, in graph, runs at ≥ 20× the
default child's training rate, at 28×28×1 and 32×32×3; a whole default-child fit with them runs at ≥ 90% of the
same fit without augmentation; so does the evaluate default (WRN-10-1) under crop + flip + TrivialAugment-Wide.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import dense_rate_gflops, load_fashion_subset, median, np, tf, timed, train_step_rate, write_results  # noqa: E402
from scipy import ndimage  # noqa: E402

from deepaug_pipeline.augment import imaging, ops as ops_lib  # noqa: E402
from deepaug_pipeline.augment.baselines import base_augment, base_params  # noqa: E402
from deepaug_pipeline.augment.policy import Policy, apply_policy  # noqa: E402
from deepaug_pipeline.config import EvaluateConfig, IngestConfig, SearchConfig  # noqa: E402
from deepaug_pipeline.data import LabelledImages  # noqa: E402
from deepaug_pipeline.evaluate.final import FinalTrainer  # noqa: E402
from deepaug_pipeline.evaluate.strategies import strategy_augment  # noqa: E402
from deepaug_pipeline.models import build_model  # noqa: E402
from deepaug_pipeline.models.training import FitSettings, Trainer  # noqa: E402
from deepaug_pipeline.search.records import FitRequest  # noqa: E402
from deepaug_pipeline.search.run import policy_space  # noqa: E402
from deepaug_pipeline.search.trial import TrialRunner  # noqa: E402

BATCH = 128
REPEATS = 5
FIT_REPEATS = 6
CHILD_EPOCHS = 8  # whole fits, shorter than the default child's 60 epochs: the ratio is per epoch
EVAL_EPOCHS = 3
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
    fn = tf.function(lambda b, s: imaging.from_unit(apply_policy(imaging.to_unit(b), tensors, s, available), tf.uint8))
    seeds = [tf.constant([1, i], tf.int64) for i in range(20)]
    secs = timed(lambda: [fn(x, s) for s in seeds][-1].numpy(), REPEATS)
    return 20 * len(images) / median(secs)


def single_op_rate(images: np.ndarray, name: str) -> float:
    x = tf.constant(images)
    idx = ops_lib.OP_INDEX[name]
    ids = tf.fill([len(images)], idx)
    mags = tf.fill([len(images)], 0.7)
    fn = tf.function(lambda b, s: ops_lib.apply_ops(imaging.to_unit(b), ids, mags, s, [idx]))
    seeds = [tf.constant([1, i], tf.int64) for i in range(20)]
    return 20 * len(images) / median(timed(lambda: [fn(x, s) for s in seeds][-1].numpy(), REPEATS))


def augment_rate(images: np.ndarray, augment, aug_args) -> float:
    """Images/s of an ``augment(x, aug_args, seed)`` function on uint8 batches, in graph."""
    x = tf.constant(images)
    fn = tf.function(lambda b, s: imaging.from_unit(augment(imaging.to_unit(b), aug_args, s), tf.uint8))
    seeds = [tf.constant([1, i], tf.int64) for i in range(20)]
    return 20 * len(images) / median(timed(lambda: [fn(x, s) for s in seeds][-1].numpy(), REPEATS))


def interleaved_fits(fit_without, fit_with) -> dict:
    """Whole fits (input pipeline, training, the validated epochs) without and with augmentation, on one traced
    graph (both arms are data of one instance, as in the search and in evaluate). On this VM identical fits in one
    process differ by up to 30% from one position to the next, so the arms alternate in ABBA order over
    ``FIT_REPEATS`` pairs after a traced warm-up pair, and ``child_fit_control`` runs the same fit in both arms."""
    times: dict[str, list[float]] = {"without": [], "with": []}
    arms = (("without", fit_without), ("with", fit_with))
    for repeat in range(FIT_REPEATS + 1):
        for name, fit in arms if repeat % 2 == 0 else arms[::-1]:
            start = time.perf_counter()
            fit()
            if repeat:
                times[name].append(time.perf_counter() - start)
    without, with_aug = median(times["without"]), median(times["with"])
    return {"fit_without_s": without, "fit_with_s": with_aug, "with_over_without": without / with_aug,
            "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()}}  # fmt: skip


def child_fits(splits, cfg: SearchConfig) -> dict:
    """The default child (search config): base crop + flip then a search-space policy, against base none and the
    identity policy (the search's own no-augmentation fit), through TrialRunner as a search runs them."""
    child = cfg.child.model_copy(update={"epochs": CHILD_EPOCHS})
    runner = TrialRunner(splits.search_subset, splits.seed_validation_pool, 10, child, 42, policy_space(cfg, 1).op_indices())
    identity = policy_space(cfg, 1).no_augmentation().to_dict()
    plain = FitRequest("plain", "search", "none", 0, identity)
    augmented = FitRequest("augmented", "search", "standard", 0, SEARCH_LIKE.to_dict())
    out = interleaved_fits(lambda: runner.run(plain), lambda: runner.run(augmented))
    control = interleaved_fits(lambda: runner.run(plain), lambda: runner.run(plain))["with_over_without"]
    return {"model": cfg.child.model, "epochs": CHILD_EPOCHS, "images": len(splits.search_subset), "batch": cfg.child.batch_size,
            **out, "control_same_fit_both_arms": control}  # fmt: skip


def evaluate_fits(splits, cfg: EvaluateConfig) -> dict:
    """The evaluate default model, standard + TrivialAugment-Wide against none, through FinalTrainer as evaluate
    runs them, on a training set of its size."""
    pool = splits.seed_validation_pool
    train = LabelledImages(pool.x[: cfg.train_size], pool.y[: cfg.train_size])
    val = LabelledImages(pool.x[-cfg.validation_size :], pool.y[-cfg.validation_size :])
    test = LabelledImages(splits.search_subset.x, splits.search_subset.y)
    final = FinalTrainer(train, val, test, 10, None, cfg.model_copy(update={"epochs": EVAL_EPOCHS}), 42)
    out = interleaved_fits(lambda: final.run("none", 0), lambda: final.run("standard+trivialaugment", 0))
    return {"model": cfg.model, "epochs": EVAL_EPOCHS, "images": len(train), "batch": cfg.batch_size, **out}


def main() -> None:
    cfg, ingest, eval_cfg = SearchConfig(), IngestConfig(), EvaluateConfig()
    splits = load_fashion_subset(ingest.train_set_size)
    gray = splits.search_subset.x[:BATCH]
    rgb = np.random.default_rng(0).integers(0, 256, (BATCH, 32, 32, 3), dtype=np.uint8)
    search_ops = {1: [ops_lib.OP_INDEX[n] for n in ops_lib.search_ops(1)], 3: [ops_lib.OP_INDEX[n] for n in ops_lib.search_ops(3)]}
    results: dict = {"batch": BATCH, "repeats": REPEATS, "dense_rate": dense_rate_gflops()}

    def search_augment(channels: int):
        def fn(x, aug_args, seed):  # what a search fit applies: the base, then the policy over the whole space
            s_base, s_policy = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
            return apply_policy(base_augment(x, aug_args[0], s_base), aug_args[1], s_policy, search_ops[channels])

        return fn

    search_args = (base_params("standard"), SEARCH_LIKE.tensors())
    trivial = strategy_augment("standard+trivialaugment", None, eval_cfg)
    results["graph_img_per_s"] = {
        "prototype_28x28x1": graph_rate(gray, PROTOTYPE, PROTOTYPE.op_indices()),
        "prototype_32x32x3": graph_rate(rgb, PROTOTYPE, PROTOTYPE.op_indices()),
        "crop_flip_then_search_policy_28x28x1": augment_rate(gray, search_augment(1), search_args),
        "crop_flip_then_search_policy_32x32x3": augment_rate(rgb, search_augment(3), search_args),
        "crop_flip_then_trivialaugment_28x28x1": augment_rate(gray, trivial, ()),
        "crop_flip_then_trivialaugment_32x32x3": augment_rate(rgb, trivial, ()),
    }
    rng = np.random.default_rng(0)
    results["numpy_loop_img_per_s"] = {
        "prototype_28x28x1": BATCH / median(timed(lambda: numpy_policy(gray, PROTOTYPE, rng), REPEATS)),
        "prototype_32x32x3": BATCH / median(timed(lambda: numpy_policy(rgb, PROTOTYPE, rng), REPEATS)),
    }
    results["single_op_img_per_s_28x28x1"] = {name: single_op_rate(gray, name) for name in HEAVY}

    def step_rate(shape, batch: int, options: dict) -> float:
        model = build_model(cfg.child.model, shape, 10, **options)
        dummy = LabelledImages(np.zeros((batch, *shape), np.uint8), np.zeros(batch, np.int64))
        return train_step_rate(Trainer(model, dummy, FitSettings(epochs=1, batch_size=batch)), shape, batch, REPEATS)

    results["training_img_per_s"] = {
        "child_28x28x1": step_rate((28, 28, 1), cfg.child.batch_size, cfg.child.model_options),
        "child_32x32x3": step_rate((32, 32, 3), cfg.child.batch_size, cfg.child.model_options),
        "evaluate_28x28x1": step_rate((28, 28, 1), eval_cfg.batch_size, eval_cfg.model_options),
    }
    results["child_fit"] = child_fits(splits, cfg)
    results["evaluate_fit"] = evaluate_fits(splits, eval_cfg)
    graph, train = results["graph_img_per_s"], results["training_img_per_s"]
    results["ratios"] = {
        "graph_over_numpy_28": graph["prototype_28x28x1"] / results["numpy_loop_img_per_s"]["prototype_28x28x1"],
        "search_augmentation_over_child_training_28": graph["crop_flip_then_search_policy_28x28x1"] / train["child_28x28x1"],
        "search_augmentation_over_child_training_32x32x3": graph["crop_flip_then_search_policy_32x32x3"] / train["child_32x32x3"],
        "trivialaugment_over_evaluate_training_28": graph["crop_flip_then_trivialaugment_28x28x1"] / train["evaluate_28x28x1"],
        "child_fit_with_policy_over_without": results["child_fit"]["with_over_without"],
        "child_fit_control_same_fit_both_arms": results["child_fit"]["control_same_fit_both_arms"],
        "evaluate_fit_trivialaugment_over_none": results["evaluate_fit"]["with_over_without"],
    }
    r = results["ratios"]
    results["targets"] = {
        "augmentation_at_least_20x_child_training": min(r["search_augmentation_over_child_training_28"],
                                                        r["search_augmentation_over_child_training_32x32x3"]) >= 20,  # fmt: skip
        "child_fit_with_policy_at_least_90pct": r["child_fit_with_policy_over_without"] >= 0.9,
        "evaluate_fit_with_trivialaugment_at_least_90pct": r["evaluate_fit_trivialaugment_over_none"] >= 0.9,
    }
    write_results("augment", results)


if __name__ == "__main__":
    main()
