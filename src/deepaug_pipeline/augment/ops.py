"""THE op table: every augmentation op, its magnitude → parameter range, and one dispatch function.

Conventions (so every op is batched graph code with per-image randomness):
  * images are float32 (B, H, W, C) in [0, 1], C in {1, 3}, any H × W; ``to_unit``/``from_unit``
    convert from and back to the caller's dtype and value range;
  * an op receives ``p``, its per-image parameter (B,), already mapped from the magnitude m ∈ [0, 1]
    as ``p = low + (high - low) * m`` from its table row: the one place where ranges live;
  * an op draws every random number from ``rng`` (stateless, seeded), one draw per image.

Signed ops (rotate, shear, brightness, ...) draw the sign per image, AutoAugment style: the magnitude sets
the strength, the direction is random. ``docs/ops.md`` is generated from ``OPS`` (see ``ops_markdown``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import zip_longest

import numpy as np
import tensorflow as tf

from deepaug_pipeline.augment.op_names import OP_NAMES

OpFn = Callable[[tf.Tensor, tf.Tensor, "Rng"], tf.Tensor]


class Rng:
    """Stateless random draws from one seed; every draw splits off a fresh sub-seed."""

    def __init__(self, seed: tf.Tensor) -> None:
        self._seed = tf.cast(seed, tf.int64)

    def seed(self) -> tf.Tensor:
        self._seed, sub = tf.unstack(tf.random.experimental.stateless_split(self._seed, 2))
        return sub

    def uniform(self, shape, low: float = 0.0, high: float = 1.0) -> tf.Tensor:
        return tf.random.stateless_uniform(shape, self.seed(), minval=low, maxval=high)

    def sign(self, n) -> tf.Tensor:
        return tf.where(self.uniform([n]) < 0.5, -1.0, 1.0)

    def integers(self, shape, high) -> tf.Tensor:
        return tf.random.stateless_uniform(shape, self.seed(), minval=0, maxval=high, dtype=tf.int32)


# --------------------------------------------------------------------------- helpers
def _b(x: tf.Tensor) -> tf.Tensor:
    return tf.shape(x)[0]


def _hw(x: tf.Tensor) -> tuple[int, int]:
    return int(x.shape[1]), int(x.shape[2])


def _bcast(v: tf.Tensor) -> tf.Tensor:
    """(B,) → (B, 1, 1, 1) for per-image arithmetic."""
    return tf.reshape(v, [-1, 1, 1, 1])


def _blend(a: tf.Tensor, b: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """PIL-style ``a + factor * (b - a)``, clipped to [0, 1]; factor is per image."""
    return tf.clip_by_value(a + _bcast(factor) * (b - a), 0.0, 1.0)


def _gray(x: tf.Tensor) -> tf.Tensor:
    if x.shape[-1] == 1:
        return x
    return tf.reduce_sum(x * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)


def _colour_only(fn: OpFn) -> OpFn:
    """Colour ops are the identity on 1-channel images (and are left out of grayscale search spaces)."""

    def op(x, p, rng):
        return x if x.shape[-1] == 1 else fn(x, p, rng)

    return op


def _transform(x: tf.Tensor, transforms: tf.Tensor, fill: float = 0.0) -> tf.Tensor:
    """Per-image projective transforms (B, 8), output → input coordinates, bilinear, constant fill."""
    h, w = _hw(x)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=x,
        transforms=transforms,
        output_shape=tf.constant([h, w], tf.int32),
        fill_value=tf.constant(fill, tf.float32),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return tf.ensure_shape(out, x.shape)


def affine(x: tf.Tensor, a, b, c, d, tx, ty) -> tf.Tensor:
    """Affine map about the image centre: input = [[a, b], [c, d]] (output − centre) + centre + (tx, ty)."""
    h, w = _hw(x)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    zeros = tf.zeros_like(a)
    rows = [a, b, cx - a * cx - b * cy + tx, c, d, cy - c * cx - d * cy + ty, zeros, zeros]
    return _transform(x, tf.stack(rows, axis=1))


def _ones_like_p(p):
    return tf.ones_like(p)


def _conv3x3(x: tf.Tensor, kernel: list[list[float]]) -> tf.Tensor:
    """The same 3×3 kernel on every channel, reflect-padded."""
    c = int(x.shape[-1])
    k = tf.tile(tf.reshape(tf.constant(kernel, tf.float32), [3, 3, 1, 1]), [1, 1, c, 1])
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, k, strides=[1, 1, 1, 1], padding="VALID")


def _gaussian_blur(x: tf.Tensor, sigma: tf.Tensor, radius: int) -> tf.Tensor:
    """Separable Gaussian blur with a per-image sigma (B,) in pixels; sigma → 0 is the identity."""
    h, w = _hw(x)
    c = int(x.shape[-1])
    t = tf.range(-radius, radius + 1, dtype=tf.float32)
    s = tf.maximum(sigma, 1e-3)[:, None]
    k = tf.exp(-0.5 * tf.square(t[None, :] / s))
    k = k / tf.reduce_sum(k, axis=1, keepdims=True)  # (B, K)
    # Fold the batch into channels so one depthwise conv applies a different kernel to each image.
    kc = tf.repeat(k, c, axis=0)  # (B*C, K)
    stacked = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, -1])
    pad = [[0, 0], [radius, radius], [radius, radius], [0, 0]]
    mode = "REFLECT" if radius < min(h, w) else "SYMMETRIC"
    stacked = tf.pad(stacked, pad, mode=mode)
    kx = tf.reshape(tf.transpose(kc), [1, 2 * radius + 1, -1, 1])
    ky = tf.reshape(tf.transpose(kc), [2 * radius + 1, 1, -1, 1])
    out = tf.nn.depthwise_conv2d(stacked, kx, [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, ky, [1, 1, 1, 1], "VALID")
    return tf.transpose(tf.reshape(out, [h, w, -1, c]), [2, 0, 1, 3])


def _smooth_noise(n, h: int, w: int, cells: int, rng: Rng) -> tf.Tensor:
    """Low-frequency noise in [0, 1], (B, H, W, 1): a random cells×cells grid, bicubic-upsampled."""
    grid = rng.uniform([n, cells, cells, 1])
    return tf.clip_by_value(tf.image.resize(grid, [h, w], method="bicubic"), 0.0, 1.0)


def _coarse_mask(x: tf.Tensor, fraction: tf.Tensor, rng: Rng, cells: int = 8) -> tf.Tensor:
    """Per-image mask (B, H, W, 1) of whole grid cells, each cell on with probability ``fraction``."""
    h, w = _hw(x)
    n = _b(x)
    on = tf.cast(rng.uniform([n, cells, cells, 1]) < _bcast(fraction), tf.float32)
    return tf.image.resize(on, [h, w], method="nearest")


def _sample_bilinear(x: tf.Tensor, ys: tf.Tensor, xs: tf.Tensor) -> tf.Tensor:
    """Sample x (B, H, W, C) at float coordinates (B, H, W); zero outside the image."""
    h, w = _hw(x)
    n = _b(x)
    y0, x0 = tf.floor(ys), tf.floor(xs)
    wy, wx = (ys - y0)[..., None], (xs - x0)[..., None]
    flat = tf.reshape(x, [n * h * w, -1])
    base = tf.reshape(tf.range(n) * h * w, [-1, 1, 1])

    def tap(yy, xx):
        inside = (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
        yi = tf.clip_by_value(tf.cast(yy, tf.int32), 0, h - 1)
        xi = tf.clip_by_value(tf.cast(xx, tf.int32), 0, w - 1)
        vals = tf.gather(flat, base + yi * w + xi)
        return vals * tf.cast(inside, tf.float32)[..., None]

    top = tap(y0, x0) * (1 - wx) + tap(y0, x0 + 1) * wx
    bottom = tap(y0 + 1, x0) * (1 - wx) + tap(y0 + 1, x0 + 1) * wx
    return top * (1 - wy) + bottom * wy


# --------------------------------------------------------------------------- geometric ops
def identity(x, p, rng):
    return x


def rotate(x, p, rng):
    theta = rng.sign(_b(x)) * p * (math.pi / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    return affine(x, cos, -sin, sin, cos, 0.0 * p, 0.0 * p)


def shear_x(x, p, rng):
    one, zero = _ones_like_p(p), 0.0 * p
    return affine(x, one, rng.sign(_b(x)) * p, zero, one, zero, zero)


def shear_y(x, p, rng):
    one, zero = _ones_like_p(p), 0.0 * p
    return affine(x, one, zero, rng.sign(_b(x)) * p, one, zero, zero)


def shear(x, p, rng):
    one, zero = _ones_like_p(p), 0.0 * p
    n = _b(x)
    return affine(x, one, rng.sign(n) * p, rng.sign(n) * p, one, zero, zero)


def translate_x(x, p, rng):
    h, w = _hw(x)
    zero = 0.0 * p
    return affine(x, _ones_like_p(p), zero, zero, _ones_like_p(p), rng.sign(_b(x)) * p * w, zero)


def translate_y(x, p, rng):
    h, w = _hw(x)
    zero = 0.0 * p
    return affine(x, _ones_like_p(p), zero, zero, _ones_like_p(p), zero, rng.sign(_b(x)) * p * h)


def crop(x, p, rng):
    """Crop away up to ``p`` of each side at a random position, resize back (zoom in)."""
    h, w = _hw(x)
    n = _b(x)
    scale = 1.0 - p
    zero = 0.0 * p
    tx = rng.uniform([n], -1.0, 1.0) * p * (w - 1) / 2.0
    ty = rng.uniform([n], -1.0, 1.0) * p * (h - 1) / 2.0
    return affine(x, scale, zero, zero, scale, tx, ty)


def perspective(x, p, rng):
    """Move each corner by up to ``p`` of the side, then map the image onto the moved corners."""
    h, w = _hw(x)
    n = _b(x)
    dst = tf.constant([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], tf.float32)
    jitter = rng.uniform([n, 4, 2], 0.0, 1.0) * tf.reshape(p, [-1, 1, 1]) * tf.constant([[w - 1, h - 1]], tf.float32)
    inward = tf.constant([[1, 1], [-1, 1], [-1, -1], [1, -1]], tf.float32)
    src = dst[None] + jitter * inward[None]
    # Solve for the homography mapping output corners (dst) to input corners (src), per image.
    dx, dy = dst[:, 0], dst[:, 1]
    rows_x = tf.stack([dx, dy, tf.ones(4), tf.zeros(4), tf.zeros(4), tf.zeros(4)], axis=1)
    rows_y = tf.stack([tf.zeros(4), tf.zeros(4), tf.zeros(4), dx, dy, tf.ones(4)], axis=1)
    sx, sy = src[..., 0], src[..., 1]
    a_x = tf.concat([tf.tile(rows_x[None], [n, 1, 1]), tf.stack([-dx[None] * sx, -dy[None] * sx], axis=2)], axis=2)
    a_y = tf.concat([tf.tile(rows_y[None], [n, 1, 1]), tf.stack([-dx[None] * sy, -dy[None] * sy], axis=2)], axis=2)
    a = tf.concat([a_x, a_y], axis=1)
    b = tf.concat([sx, sy], axis=1)[..., None]
    coeffs = tf.linalg.solve(a, b)[..., 0]
    return _transform(x, coeffs)


def elastic(x, p, rng):
    """Elastic distortion (Simard et al.): a smoothed random displacement field of max size ``p`` × side."""
    h, w = _hw(x)
    n = _b(x)
    side = float(min(h, w))
    sigma = 0.12 * side
    radius = max(1, min(int(math.ceil(2.5 * sigma)), min(h, w) - 1))
    field = rng.uniform([n, h, w, 2], -1.0, 1.0)
    smooth = _gaussian_blur(field, tf.fill([n], sigma), radius)
    peak = tf.reduce_max(tf.abs(smooth), axis=[1, 2, 3], keepdims=True) + 1e-6
    disp = smooth / peak * _bcast(p) * side
    yy, xx = tf.meshgrid(tf.range(h, dtype=tf.float32), tf.range(w, dtype=tf.float32), indexing="ij")
    return _sample_bilinear(x, yy[None] + disp[..., 0], xx[None] + disp[..., 1])


def horizontal_flip(x, p, rng):
    flip = rng.uniform([_b(x)]) < p
    return tf.where(_bcast(flip), tf.reverse(x, axis=[2]), x)


def vertical_flip(x, p, rng):
    flip = rng.uniform([_b(x)]) < p
    return tf.where(_bcast(flip), tf.reverse(x, axis=[1]), x)


# --------------------------------------------------------------------------- pixel / colour ops
def gaussian_blur(x, p, rng):
    h, w = _hw(x)
    sigma = p * min(h, w)
    radius = max(1, min(int(math.ceil(3 * 0.06 * min(h, w))), min(h, w) - 1))
    return _gaussian_blur(x, sigma, radius)


def sharpen(x, p, rng):
    sharp = _conv3x3(x, [[-1, -1, -1], [-1, 9, -1], [-1, -1, -1]])
    return _blend(x, sharp, p)


def emboss(x, p, rng):
    embossed = _conv3x3(x, [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    return _blend(x, embossed, p)


def sharpness(x, p, rng):
    """PIL ImageEnhance.Sharpness: factor 1 ± p between the smoothed image and the original."""
    smooth = _conv3x3(x, [[1 / 13, 1 / 13, 1 / 13], [1 / 13, 5 / 13, 1 / 13], [1 / 13, 1 / 13, 1 / 13]])
    return _blend(smooth, x, 1.0 + rng.sign(_b(x)) * p)


def additive_gaussian_noise(x, p, rng):
    noise = tf.random.stateless_normal(tf.shape(x), rng.seed())
    return tf.clip_by_value(x + noise * _bcast(p), 0.0, 1.0)


def dropout(x, p, rng):
    h, w = _hw(x)
    keep = rng.uniform([_b(x), h, w, 1]) >= _bcast(p)
    return x * tf.cast(keep, tf.float32)


def coarse_dropout(x, p, rng):
    return x * (1.0 - _coarse_mask(x, p, rng))


def coarse_salt_pepper(x, p, rng):
    mask = _coarse_mask(x, p, rng)
    salt = _coarse_mask(x, tf.fill([_b(x)], 0.5), rng)  # salt (1) or pepper (0) per cell
    return x * (1.0 - mask) + mask * salt


def cutout(x, p, rng):
    """One square of side ``p`` × min(H, W) at a random centre, filled with mid-grey."""
    h, w = _hw(x)
    n = _b(x)
    half = _bcast(p * min(h, w) / 2.0)
    cy = _bcast(rng.uniform([n], 0.0, float(h)))
    cx = _bcast(rng.uniform([n], 0.0, float(w)))
    yy = tf.reshape(tf.range(h, dtype=tf.float32) + 0.5, [1, h, 1, 1])
    xx = tf.reshape(tf.range(w, dtype=tf.float32) + 0.5, [1, 1, w, 1])
    inside = (tf.abs(yy - cy) < half) & (tf.abs(xx - cx) < half)
    return tf.where(inside, 0.5, x)


def gamma_contrast(x, p, rng):
    gamma = tf.exp(rng.sign(_b(x)) * p)
    return tf.pow(tf.maximum(x, 1e-6), _bcast(gamma)) * tf.cast(x > 0, tf.float32)


def brighten(x, p, rng):
    """imgaug Add: shift every pixel by ± ``p`` (DeepAugment's ±40/255 at m = 1)."""
    return tf.clip_by_value(x + _bcast(rng.sign(_b(x)) * p), 0.0, 1.0)


def brightness(x, p, rng):
    """PIL ImageEnhance.Brightness: factor 1 ± p towards black / beyond."""
    return _blend(tf.zeros_like(x), x, 1.0 + rng.sign(_b(x)) * p)


def contrast(x, p, rng):
    mean = tf.reduce_mean(_gray(x), axis=[1, 2, 3], keepdims=True)
    return _blend(tf.broadcast_to(mean, tf.shape(x)), x, 1.0 + rng.sign(_b(x)) * p)


@_colour_only
def color(x, p, rng):
    return _blend(tf.broadcast_to(_gray(x), tf.shape(x)), x, 1.0 + rng.sign(_b(x)) * p)


@_colour_only
def grayscale(x, p, rng):
    return _blend(x, tf.broadcast_to(_gray(x), tf.shape(x)), p)


@_colour_only
def add_to_hue_and_saturation(x, p, rng):
    n = _b(x)
    hsv = tf.image.rgb_to_hsv(x)
    hue = tf.math.floormod(hsv[..., 0] + _bcast(rng.sign(n) * p)[..., 0], 1.0)
    sat = tf.clip_by_value(hsv[..., 1] + _bcast(rng.sign(n) * 2.0 * p)[..., 0], 0.0, 1.0)
    return tf.clip_by_value(tf.image.hsv_to_rgb(tf.stack([hue, sat, hsv[..., 2]], axis=-1)), 0.0, 1.0)


def invert(x, p, rng):
    """Invert with probability ``p`` per image (DeepAugment ignored m here)."""
    flip = rng.uniform([_b(x)]) < p
    return tf.where(_bcast(flip), 1.0 - x, x)


def solarize(x, p, rng):
    """Invert pixels above the threshold 1 − p (p = 0: nothing is above 1)."""
    return tf.where(x > _bcast(1.0 - p), 1.0 - x, x)


def posterize(x, p, rng):
    """Keep 8 − round(p) bits per channel."""
    shift = _bcast(tf.round(p))
    step = tf.pow(2.0, shift)
    return tf.where(shift > 0, tf.floor(tf.round(x * 255.0) / step) * step / 255.0, x)


def auto_contrast(x, p, rng):
    lo = tf.reduce_min(x, axis=[1, 2], keepdims=True)
    hi = tf.reduce_max(x, axis=[1, 2], keepdims=True)
    scale = tf.where(hi > lo, 1.0 / tf.maximum(hi - lo, 1e-6), 1.0)
    offset = tf.where(hi > lo, lo, 0.0)
    return tf.clip_by_value((x - offset) * scale, 0.0, 1.0)


def equalize(x, p, rng):
    """PIL ImageOps.equalize, per image and channel, with one batched histogram."""
    h, w = _hw(x)
    c = int(x.shape[-1])
    # Channels first while still float32: TensorFlow's oneDNN rewrite takes no int32 on any CPU and logs "oneDNN
    # supports DT_INT32 only on platforms with AVX-512" (an E line, even with AVX-512) for an int32 Transpose.
    q = tf.cast(tf.round(tf.transpose(x, [0, 3, 1, 2]) * 255.0), tf.int32)
    rows = tf.reshape(q, [-1, h * w])  # (B*C, H*W)
    hist = tf.math.bincount(rows, minlength=256, maxlength=256, axis=-1)
    last = 255 - tf.argmax(tf.reverse(tf.cast(hist > 0, tf.int32), axis=[1]), axis=1, output_type=tf.int32)
    last_count = tf.gather(hist, last, batch_dims=1)
    step = (h * w - last_count) // 255
    cum = tf.cumsum(hist, axis=1, exclusive=True)
    safe = tf.maximum(step, 1)[:, None]
    lut = tf.clip_by_value((cum + safe // 2) // safe, 0, 255)
    lut = tf.where(step[:, None] > 0, lut, tf.range(256)[None])
    out = tf.gather(lut, rows, batch_dims=1)
    out = tf.cast(tf.reshape(out, [-1, c, h, w]), tf.float32) / 255.0
    return tf.transpose(out, [0, 2, 3, 1])


def histogram_equalize(x, p, rng):
    return _blend(x, equalize(x, p, rng), p)


def fog(x, p, rng):
    """A smooth, bright haze whose density is ``p`` (DeepAugment's fog ignored m)."""
    h, w = _hw(x)
    density = (_smooth_noise(_b(x), h, w, 3, rng) * 0.5 + 0.5) * _bcast(p)
    return tf.clip_by_value(x * (1.0 - density) + density * 0.9, 0.0, 1.0)


def clouds(x, p, rng):
    """Patchy white clouds from two octaves of noise, opacity up to ``p``."""
    h, w = _hw(x)
    n = _b(x)
    noise = 0.65 * _smooth_noise(n, h, w, 4, rng) + 0.35 * _smooth_noise(n, h, w, 8, rng)
    cover = tf.clip_by_value((noise - 0.45) * 3.0, 0.0, 1.0) * _bcast(p)
    return tf.clip_by_value(x * (1.0 - cover) + cover, 0.0, 1.0)


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class OpSpec:
    """One op: its function and how a magnitude m ∈ [0, 1] maps to its parameter."""

    name: str
    fn: OpFn
    low: float  # parameter at m = 0
    high: float  # parameter at m = 1
    param: str  # what the parameter means
    colour_only: bool = False
    identity_at_zero: bool = True
    signed: bool = False  # the direction is drawn per image
    families: tuple[str, ...] = ()  # deepaugment, autoaugment, extra
    wide_high: float | None = None  # TrivialAugment-Wide's larger range, where it differs

    def param_of(self, m: tf.Tensor) -> tf.Tensor:
        return self.low + (self.high - self.low) * m

    @property
    def wide_scale(self) -> float:
        """Magnitude that reaches ``wide_high`` on this op's linear scale (1.0 if no wide range)."""
        if self.wide_high is None or self.high == self.low:
            return 1.0
        return (self.wide_high - self.low) / (self.high - self.low)


DA, AA, EX = "deepaugment", "autoaugment", "extra"
OPS: tuple[OpSpec, ...] = (
    OpSpec("identity", identity, 0, 0, "none", families=(AA,)),
    # geometric
    OpSpec("crop", crop, 0, 0.25, "fraction of each side cropped, then resized back", families=(DA,)),
    OpSpec("rotate", rotate, 0, 30, "degrees, random sign", signed=True, families=(DA, AA), wide_high=135),
    OpSpec("shear", shear, 0, 0.3, "shear factor on both axes, random signs", signed=True, families=(DA,)),
    OpSpec("shear-x", shear_x, 0, 0.3, "horizontal shear factor, random sign", signed=True, families=(AA,), wide_high=0.99),
    OpSpec("shear-y", shear_y, 0, 0.3, "vertical shear factor, random sign", signed=True, families=(AA,), wide_high=0.99),
    OpSpec("translate-x", translate_x, 0, 0.3, "fraction of width, random sign", signed=True, families=(DA, AA), wide_high=1.0),
    OpSpec("translate-y", translate_y, 0, 0.3, "fraction of height, random sign", signed=True, families=(DA, AA), wide_high=1.0),
    OpSpec("horizontal-flip", horizontal_flip, 0, 0.5, "probability of a left-right flip", families=(DA,)),
    OpSpec("vertical-flip", vertical_flip, 0, 0.5, "probability of an up-down flip", families=(DA,)),
    OpSpec("perspective-transform", perspective, 0, 0.15, "corner shift as a fraction of the side", families=(EX,)),
    OpSpec("elastic-transform", elastic, 0, 0.1, "max displacement as a fraction of the side", families=(EX,)),
    # filters
    OpSpec("gaussian-blur", gaussian_blur, 0, 0.06, "sigma as a fraction of the shorter side", families=(DA,)),
    OpSpec("sharpen", sharpen, 0, 1.0, "blend weight of a 3x3 sharpen kernel", families=(DA,)),
    OpSpec("emboss", emboss, 0, 1.0, "blend weight of a 3x3 emboss kernel", families=(DA,)),
    OpSpec("sharpness", sharpness, 0, 0.9, "PIL enhance factor 1 ± p", signed=True, families=(AA,), wide_high=0.99),
    # noise and occlusion
    OpSpec("additive-gaussian-noise", additive_gaussian_noise, 0, 0.2, "noise std (pixel scale 0-1)", families=(DA,)),
    OpSpec("dropout", dropout, 0, 0.3, "fraction of pixels set to 0", families=(DA,)),
    OpSpec("coarse-dropout", coarse_dropout, 0, 0.3, "fraction of 8x8-grid cells set to 0", families=(DA,)),
    OpSpec("coarse-salt-pepper", coarse_salt_pepper, 0, 0.3, "fraction of 8x8-grid cells set to 0 or 1", families=(DA,)),
    OpSpec("cutout", cutout, 0, 0.5, "square side as a fraction of the shorter side", families=(AA,)),
    # intensity
    OpSpec("gamma-contrast", gamma_contrast, 0, math.log(2.5), "log gamma, random sign (gamma in [1/2.5, 2.5])", signed=True, families=(DA,)),
    OpSpec("brighten", brighten, 0, 40 / 255, "value added, random sign (pixel scale 0-1)", signed=True, families=(DA,)),
    OpSpec("brightness", brightness, 0, 0.9, "PIL enhance factor 1 ± p", signed=True, families=(AA,), wide_high=0.99),
    OpSpec("contrast", contrast, 0, 0.9, "PIL enhance factor 1 ± p", signed=True, families=(AA,), wide_high=0.99),
    OpSpec("invert", invert, 0, 1.0, "probability of inverting", families=(DA,)),
    OpSpec("solarize", solarize, 0, 1.0, "inverts pixels above 1 - p", families=(AA,)),
    OpSpec("posterize", posterize, 0, 4, "bits removed (8 - p kept)", families=(AA,), wide_high=6),
    OpSpec("auto-contrast", auto_contrast, 0, 0, "none (stretches each channel to 0-1)", identity_at_zero=False, families=(AA,)),
    OpSpec("equalize", equalize, 0, 0, "none (histogram equalization per channel)", identity_at_zero=False, families=(AA,)),
    OpSpec("histogram-equalize", histogram_equalize, 0, 1.0, "blend weight of the equalized image", families=(EX,)),
    OpSpec("fog", fog, 0, 0.7, "haze density", families=(DA,)),
    OpSpec("clouds", clouds, 0, 0.9, "cloud opacity", families=(DA,)),
    # colour
    OpSpec("color", color, 0, 0.9, "PIL saturation factor 1 ± p", colour_only=True, signed=True, families=(AA,), wide_high=0.99),
    OpSpec("grayscale", grayscale, 0, 1.0, "blend weight of the gray image", colour_only=True, families=(EX,)),
    OpSpec("add-to-hue-and-saturation", add_to_hue_and_saturation, 0, 0.1, "hue shift (turns) and 2p saturation, random signs", colour_only=True, signed=True, families=(DA,)),
)  # fmt: skip


def _check_op_names(table: tuple[str, ...]) -> None:
    """Config validation reads ``op_names.OP_NAMES``, not this table (no TensorFlow there): refuse to load if the
    two differ (a raise, not an assert, so ``python -O`` keeps the check)."""
    for at, (name, listed) in enumerate(zip_longest(table, OP_NAMES)):
        if name != listed:
            raise RuntimeError(
                f"op_names.OP_NAMES must list the op table's names in its order; at position {at} it has {listed!r}, "
                f"the table {name!r}"
            )


_check_op_names(tuple(op.name for op in OPS))
OP_INDEX: dict[str, int] = {name: i for i, name in enumerate(OP_NAMES)}
IDENTITY = OP_INDEX["identity"]

DEEPAUGMENT_OPS = tuple(op.name for op in OPS if DA in op.families)
RANDAUGMENT_OPS = (
    "identity", "auto-contrast", "equalize", "rotate", "solarize", "color", "posterize",
    "contrast", "brightness", "sharpness", "shear-x", "shear-y", "translate-x", "translate-y",
)  # fmt: skip
TRIVIALAUGMENT_OPS = RANDAUGMENT_OPS


# The search's range of each op that torchvision's RandAugment / TrivialAugmentWide also have, their ranges, and why
# the search uses its own (docs/ops.md shows this next to the table). Ops not listed keep DeepAugment's imgaug range.
_ENHANCE = ("0–0.9", "0–0.99", "RandAugment's range: a factor of 0.01 leaves an almost uniform image")
TORCHVISION_RANGES: dict[str, tuple[str, str, str]] = {
    "identity": ("–", "–", "in the space so a sub-policy can hold one op or none, as in both torchvision spaces"),
    "rotate": ("0–30°", "0–135°", "RandAugment's range: 135° turns a 6 into a 9 and a shirt upside down"),
    "shear-x": ("0–0.3", "0–0.99", "RandAugment's range"),
    "shear-y": ("0–0.3", "0–0.99", "RandAugment's range"),
    "translate-x": ("0–0.45 of the side (150/331)", "0–32 px", "DeepAugment's 0–0.3: the base's crop already shifts by 1/8"),
    "translate-y": ("0–0.45 of the side (150/331)", "0–32 px", "DeepAugment's 0–0.3: the base's crop already shifts by 1/8"),
    "brightness": _ENHANCE,
    "contrast": _ENHANCE,
    "sharpness": _ENHANCE,
    "color": _ENHANCE,
    "posterize": ("remove 0–4 bits", "remove 0–6 bits", "RandAugment's range"),
    "solarize": ("threshold 255 → 0", "threshold 255 → 0", "the same: m = 1 inverts every pixel"),
    "auto-contrast": ("no magnitude", "no magnitude", "the same"),
    "equalize": ("no magnitude", "no magnitude", "the same"),
}


def search_ops(channels: int, names: tuple[str, ...] = DEEPAUGMENT_OPS) -> tuple[str, ...]:
    """The searchable op names for images with ``channels`` channels (colour ops drop out for grayscale)."""
    unknown = [n for n in names if n not in OP_INDEX]
    if unknown:
        raise ValueError(f"unknown augmentation op(s) {unknown}; known: {', '.join(OP_NAMES)}")
    return tuple(n for n in names if channels == 3 or not OPS[OP_INDEX[n]].colour_only)


# --------------------------------------------------------------------------- dispatch
def apply_ops(
    images: tf.Tensor, op_ids: tf.Tensor, magnitudes: tf.Tensor, seed: tf.Tensor, available: Sequence[int] | None = None
) -> tf.Tensor:
    """Apply op ``op_ids[i]`` at magnitude ``magnitudes[i]`` to image i: the one dispatch function.

    Images are partitioned by op, each op runs once on its part (skipped when empty), and the parts are
    stitched back in order, so the graph is fixed whatever the policy: policies are data, not code.
    ``available`` (op indices) limits the graph to the ops a caller can ask for (a search space, one
    policy's ops): fewer branches, less per-batch overhead. Ops outside it act as the identity.
    """
    available = tuple(sorted(set(available) | {IDENTITY})) if available is not None else tuple(range(len(OPS)))
    lookup = np.zeros(len(OPS), np.int32)  # global op index → partition (0 = identity unless listed)
    lookup[list(available)] = np.arange(len(available))
    lookup[[i for i in range(len(OPS)) if i not in available]] = available.index(IDENTITY)
    part_of = tf.gather(tf.constant(lookup), tf.cast(op_ids, tf.int32))
    n_parts = len(available)
    positions = tf.range(tf.shape(images)[0])
    parts = tf.dynamic_partition(images, part_of, n_parts)
    mags = tf.dynamic_partition(tf.cast(magnitudes, tf.float32), part_of, n_parts)
    where = tf.dynamic_partition(positions, part_of, n_parts)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), n_parts)
    outs = []
    for k, op_index in enumerate(available):
        part = parts[k]
        if op_index == IDENTITY:
            outs.append(part)
            continue
        spec = OPS[op_index]

        def run(part=part, spec=spec, m=mags[k], s=seeds[k]):
            return tf.ensure_shape(spec.fn(part, spec.param_of(m), Rng(s)), part.shape)

        outs.append(tf.cond(tf.shape(part)[0] > 0, run, lambda part=part: part))
    out = tf.dynamic_stitch(where, outs)
    return tf.ensure_shape(out, images.shape)


def apply_op(images: tf.Tensor, name: str, magnitude: float, seed) -> tf.Tensor:
    """Apply one named op to every image of a float [0, 1] batch (tests, figures)."""
    n = tf.shape(images)[0]
    return apply_ops(images, tf.fill([n], OP_INDEX[name]), tf.fill([n], float(magnitude)), seed)


# --------------------------------------------------------------------------- dtype / range
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


# --------------------------------------------------------------------------- docs
def ops_markdown() -> str:
    """The op table as Markdown; ``docs/ops.md`` is this text (a test keeps them equal)."""
    lines = [
        "# Augmentation ops",
        "",
        "Generated from `src/deepaug_pipeline/augment/ops.py` (`OPS`) by "
        "`python -m deepaug_pipeline.augment.ops > docs/ops.md`. A magnitude m ∈ [0, 1] maps linearly to the "
        "parameter: p = low + (high − low) · m. Signed ops draw their direction per image.",
        "",
        "| op | parameter | low (m=0) | high (m=1) | TA-Wide high | families | colour only | identity at m=0 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for op in OPS:
        wide = "" if op.wide_high is None else f"{op.wide_high:g}"
        lines.append(
            f"| {op.name} | {op.param} | {op.low:g} | {op.high:.4g} | {wide} | {', '.join(op.families)} | "
            f"{'yes' if op.colour_only else ''} | {'yes' if op.identity_at_zero else 'no'} |"
        )
    lines += [
        "",
        "## The search's ranges against torchvision's",
        "",
        "The search uses the `low`–`high` range above for every op in its space (by default identity and the "
        "deepaugment family; `search.ops` names others); evaluate's TrivialAugment-Wide uses the `TA-Wide high` "
        "column. Ops not listed here have no counterpart in torchvision's RandAugment or TrivialAugmentWide and keep "
        "DeepAugment's imgaug range.",
        "",
        "| op | torchvision RandAugment | torchvision TrivialAugmentWide | the search's range, and why |",
        "| --- | --- | --- | --- |",
    ]
    for name, (randaugment, wide, why) in TORCHVISION_RANGES.items():
        op = OPS[OP_INDEX[name]]
        ours = "–" if op.low == op.high else f"{op.low:g}–{op.high:.4g} ({op.param})"
        lines.append(f"| {name} | {randaugment} | {wide} | {ours}: {why} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(ops_markdown(), end="")
