"""Images in and out of the augmentation graph: the caller's dtype and value range ↔ float32 [0, 1]."""

from __future__ import annotations

import tensorflow as tf

from deepaug_pipeline.errors import UserError


RANGE_SLACK = 1e-3  # of the range: float rounding from a caller's own scaling is not a wrong range


class ImageBatchError(UserError, ValueError):
    """Images the augmentation cannot take as they are (not a batch of one height and width); the message says how
    to hand them over."""


def check_batch_shape(shape: tf.TensorShape) -> None:
    """Refuse, with how to hand them over, images that are not a batch (B, H, W, C) of one height and width with
    1 or 3 channels (a Keras layer checks this when its model is built, not at the first training step)."""
    shape = tf.TensorShape(shape)
    if shape.rank != 4 or shape[1] is None or shape[2] is None:
        raise ImageBatchError(
            f"augmentation takes a batch of images (batch, height, width, channels) of one height and width; got "
            f"shape {shape}. In tf.data, batch before mapping (ds.batch(n).map(...)); resize images to one size "
            "first; add a channel axis to grayscale images without one (x[..., None]), or a batch axis to a single image"
        )
    if shape[3] not in (1, 3):  # the colour ops weigh three channels, and the grey ones one
        raise ImageBatchError(
            f"augmentation takes grayscale (1 channel) or RGB (3 channels) images; got {shape[3]} channels "
            f"(shape {shape}). Drop an alpha channel first (images[..., :3])"
        )


@tf.autograph.experimental.do_not_convert  # plain graph code: its branches are on static dtypes and shapes
def to_unit(images: tf.Tensor, value_range: tuple[float, float] | None = None) -> tf.Tensor:
    """uint8 [0, 255] or float in ``value_range`` (default [0, 1]) → float32 [0, 1], for a batch (B, H, W, C) of
    one height and width.

    Float values outside ``value_range`` raise rather than being clipped: Keras hands uint8 data on as float32 in
    [0, 255], and read as [0, 1] three quarters of such an image's pixels would come back white."""
    check_batch_shape(images.shape)
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 255.0
    lo, hi = value_range or (0.0, 1.0)
    x = tf.cast(images, tf.float32)
    slack = RANGE_SLACK * (hi - lo)
    message = (f"augmentation got float images with values outside value_range ({lo:g}, {hi:g}); pass the range "
               "they are in, e.g. value_range=(0, 255), and augment before normalising them")  # fmt: skip
    checks = [tf.debugging.assert_greater_equal(x, lo - slack, message=message),
              tf.debugging.assert_less_equal(x, hi + slack, message=message)]  # fmt: skip
    with tf.control_dependencies(checks):
        return (x - lo) / (hi - lo)


@tf.autograph.experimental.do_not_convert  # plain graph code: its branches are on static dtypes and shapes
def from_unit(images: tf.Tensor, dtype: tf.DType, value_range: tuple[float, float] | None = None) -> tf.Tensor:
    """Back to the caller's dtype and value range (uint8 is rounded)."""
    images = tf.clip_by_value(images, 0.0, 1.0)
    if dtype == tf.uint8:
        return tf.cast(tf.round(images * 255.0), tf.uint8)
    lo, hi = value_range or (0.0, 1.0)
    return tf.cast(images * (hi - lo) + lo, dtype)
