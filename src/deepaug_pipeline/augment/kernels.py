"""The augmentation ops' kernels: batched graph code, one function per op, with per-image randomness.

Conventions:
  * images are float32 (B, H, W, C) in [0, 1], C in {1, 3}, any H × W (``imaging.to_unit``/``from_unit``
    convert from and back to the caller's dtype and value range);
  * an op receives ``p``, its per-image parameter (B,), already mapped from the magnitude m ∈ [0, 1] by its row
    of the op table (``ops.OPS``): ranges live there, not here;
  * an op draws every random number from ``rng`` (stateless, seeded), one draw per image.

Signed ops (rotate, shear, brightness, ...: ``signed`` in the table) get ``p`` with its direction already drawn per
image by the dispatch, AutoAugment style: the magnitude sets the strength, the direction is random. Colour-only ops
(``colour_only``) are only called on 3-channel images.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import tensorflow as tf

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
    theta = p * (math.pi / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    return affine(x, cos, -sin, sin, cos, 0.0 * p, 0.0 * p)


def shear_x(x, p, rng):
    one, zero = _ones_like_p(p), 0.0 * p
    return affine(x, one, p, zero, one, zero, zero)


def shear_y(x, p, rng):
    one, zero = _ones_like_p(p), 0.0 * p
    return affine(x, one, zero, p, one, zero, zero)


def shear(x, p, rng):
    one, zero = _ones_like_p(p), 0.0 * p
    # p carries the horizontal factor's sign; the vertical one is drawn independently
    return affine(x, one, p, rng.sign(_b(x)) * tf.abs(p), one, zero, zero)


def translate_x(x, p, rng):
    h, w = _hw(x)
    zero = 0.0 * p
    return affine(x, _ones_like_p(p), zero, zero, _ones_like_p(p), p * w, zero)


def translate_y(x, p, rng):
    h, w = _hw(x)
    zero = 0.0 * p
    return affine(x, _ones_like_p(p), zero, zero, _ones_like_p(p), zero, p * h)


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
    return _blend(smooth, x, 1.0 + p)


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
    gamma = tf.exp(p)
    return tf.pow(tf.maximum(x, 1e-6), _bcast(gamma)) * tf.cast(x > 0, tf.float32)


def brighten(x, p, rng):
    """imgaug Add: shift every pixel by ± ``p`` (DeepAugment's ±40/255 at m = 1)."""
    return tf.clip_by_value(x + _bcast(p), 0.0, 1.0)


def brightness(x, p, rng):
    """PIL ImageEnhance.Brightness: factor 1 ± p towards black / beyond."""
    return _blend(tf.zeros_like(x), x, 1.0 + p)


def contrast(x, p, rng):
    mean = tf.reduce_mean(_gray(x), axis=[1, 2, 3], keepdims=True)
    return _blend(tf.broadcast_to(mean, tf.shape(x)), x, 1.0 + p)


def color(x, p, rng):
    return _blend(tf.broadcast_to(_gray(x), tf.shape(x)), x, 1.0 + p)


def grayscale(x, p, rng):
    return _blend(x, tf.broadcast_to(_gray(x), tf.shape(x)), p)


def add_to_hue_and_saturation(x, p, rng):
    hsv = tf.image.rgb_to_hsv(x)
    # p carries the hue shift's sign; the saturation's is drawn independently
    hue = tf.math.floormod(hsv[..., 0] + _bcast(p)[..., 0], 1.0)
    sat = tf.clip_by_value(hsv[..., 1] + _bcast(rng.sign(_b(x)) * 2.0 * tf.abs(p))[..., 0], 0.0, 1.0)
    return tf.clip_by_value(tf.image.hsv_to_rgb(tf.stack([hue, sat, hsv[..., 2]], axis=-1)), 0.0, 1.0)


def invert(x, p, rng):
    """Invert with probability ``p`` per image (DeepAugment ignored m here)."""
    flip = rng.uniform([_b(x)]) < p
    return tf.where(_bcast(flip), 1.0 - x, x)


def solarize(x, p, rng):
    """Invert pixels at or above the threshold 1 − p, as PIL's and torchvision's solarize: p = 1 inverts every pixel,
    black included; p = 0 inverts none (1.0 itself is left, so that m = 0 stays the identity)."""
    return tf.where((x >= _bcast(1.0 - p)) & (_bcast(p) > 0), 1.0 - x, x)


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
