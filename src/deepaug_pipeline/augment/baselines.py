"""Evaluation baselines over the same op library: standard crop+flip, RandAugment, TrivialAugment-Wide.

Each strategy maps a float32 [0, 1] batch and a seed to an augmented batch.
"""

from __future__ import annotations

import tensorflow as tf

from deepaug_pipeline.augment import kernels, ops as ops_lib

RA_MAX_LEVEL = 10.0  # RandAugment's magnitude scale (the authors' code): M = 9 → m = 0.9
# Plain lists, made tensors where they are used: a tensor built at import starts TensorFlow's runtime, after which
# neither a GPU's memory growth nor a Dask worker's thread cap (devices.configure_tensorflow) can be set.
_RA = [ops_lib.OP_INDEX[n] for n in ops_lib.RANDAUGMENT_OPS]
_TA = [ops_lib.OP_INDEX[n] for n in ops_lib.TRIVIALAUGMENT_OPS]


# The base augmentations a search can sit on: (crop on/off, horizontal-flip probability). Data, not code, so
# switching the base never retraces a graph.
BASES: dict[str, tuple[float, float]] = {"none": (0.0, 0.0), "crop": (1.0, 0.0), "standard": (1.0, 0.5)}
BASE_LABELS = {"none": "none", "crop": "pad + crop", "standard": "crop + flip"}


def base_params(name: str) -> tf.Tensor:
    """The base augmentation ``name`` as the tensor ``base_augment`` takes."""
    if name not in BASES:
        raise ValueError(f"unknown base augmentation '{name}' ({', '.join(BASES)})")
    return tf.constant(BASES[name], tf.float32)


def base_augment(images: tf.Tensor, params: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Pad-and-crop (zero padding of 1/8 of the side, i.e. 4 px at 32) scaled by ``params[0]`` (0 or 1), then a
    horizontal flip with probability ``params[1]``."""
    rng = kernels.Rng(seed)
    n = tf.shape(images)[0]
    h, w = int(images.shape[1]), int(images.shape[2])
    pad_y, pad_x = max(1, round(h / 8)), max(1, round(w / 8))
    crop = tf.cast(params[0], tf.float32)
    ty = crop * tf.cast(rng.integers([n], 2 * pad_y + 1) - pad_y, tf.float32)
    tx = crop * tf.cast(rng.integers([n], 2 * pad_x + 1) - pad_x, tf.float32)
    one, zero = tf.ones([n]), tf.zeros([n])
    shifted = kernels.affine(images, one, zero, zero, one, tx, ty)
    return kernels.horizontal_flip(shifted, tf.fill([n], tf.cast(params[1], tf.float32)), rng)


def randaugment(images: tf.Tensor, seed: tf.Tensor, n_ops: int = 2, magnitude: float = 9.0) -> tf.Tensor:
    """RandAugment(N, M): N ops drawn uniformly per image, each at magnitude M / 10."""
    rng = kernels.Rng(seed)
    n = tf.shape(images)[0]
    m = tf.fill([n], magnitude / RA_MAX_LEVEL)
    for _ in range(n_ops):
        op_ids = tf.gather(tf.constant(_RA, tf.int32), rng.integers([n], len(ops_lib.RANDAUGMENT_OPS)))
        images = ops_lib.apply_ops(images, op_ids, m, rng.seed(), _RA)
    return images


def trivialaugment_wide(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """TrivialAugment-Wide: one op per image, magnitude uniform over the op's wide range."""
    rng = kernels.Rng(seed)
    n = tf.shape(images)[0]
    pick = rng.integers([n], len(ops_lib.TRIVIALAUGMENT_OPS))
    wide = [ops_lib.OPS[i].wide_scale(images.shape) for i in _TA]  # translate's range is in pixels: per image size
    m = rng.uniform([n]) * tf.gather(tf.constant(wide, tf.float32), pick)
    return ops_lib.apply_ops(images, tf.gather(tf.constant(_TA, tf.int32), pick), m, rng.seed(), _TA)
