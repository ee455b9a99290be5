"""Images in and out of the augmentation graph: the caller's dtype and value range ↔ float32 [0, 1]."""

from __future__ import annotations

import tensorflow as tf


def to_unit(images: tf.Tensor, value_range: tuple[float, float] | None = None) -> tf.Tensor:
    """uint8 [0, 255] or float in ``value_range`` (default [0, 1]) → float32 [0, 1]."""
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 255.0
    lo, hi = value_range or (0.0, 1.0)
    return (tf.cast(images, tf.float32) - lo) / (hi - lo)


def from_unit(images: tf.Tensor, dtype: tf.DType, value_range: tuple[float, float] | None = None) -> tf.Tensor:
    """Back to the caller's dtype and value range (uint8 is rounded)."""
    images = tf.clip_by_value(images, 0.0, 1.0)
    if dtype == tf.uint8:
        return tf.cast(tf.round(images * 255.0), tf.uint8)
    lo, hi = value_range or (0.0, 1.0)
    return tf.cast(images * (hi - lo) + lo, dtype)
