"""THE op table: every augmentation op, its magnitude → parameter range, and the one dispatch function.

A magnitude m ∈ [0, 1] maps to an op's parameter as ``p = low + (high - low) * m`` from its row: the one place
where ranges live. The ops' bodies are in ``kernels``. ``docs/ops.md`` is generated from ``OPS`` (see
``ops_markdown``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import zip_longest

import numpy as np
import tensorflow as tf

from deepaug_pipeline.augment import kernels
from deepaug_pipeline.augment.kernels import OpFn
from deepaug_pipeline.augment.op_names import OP_NAMES


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
    randaugment: int | None = None  # its place in RandAugment's (and TrivialAugment's) list, in the order of the
    # RandAugment authors' code (not torchvision's): a draw picks the op at that place, so the order is part of what
    # a seed produces
    wide_high: float | None = None  # TrivialAugment-Wide's larger range, where it differs
    wide_pixels: float | None = None  # ... given in pixels (torchvision's translate: 32 px whatever the image size)
    side: int | None = None  # the image axis a fraction-of-the-side parameter is of: 1 (height) or 2 (width)

    def param_of(self, m: tf.Tensor) -> tf.Tensor:
        return self.low + (self.high - self.low) * m

    def wide_scale(self, image_shape) -> float:
        """Magnitude that reaches TrivialAugment-Wide's high on this op's linear scale, for images of
        ``image_shape`` (batch, height, width, channels); 1.0 if the op has no wide range."""
        wide_high = self.wide_pixels / int(image_shape[self.side]) if self.wide_pixels else self.wide_high
        if wide_high is None or self.high == self.low:
            return 1.0
        return (wide_high - self.low) / (self.high - self.low)


DA, AA, EX = "deepaugment", "autoaugment", "extra"
OPS: tuple[OpSpec, ...] = (
    OpSpec("identity", kernels.identity, 0, 0, "none", families=(AA,), randaugment=0),
    # geometric
    OpSpec("crop", kernels.crop, 0, 0.25, "fraction of each side cropped, then resized back", families=(DA,)),
    OpSpec("rotate", kernels.rotate, 0, 30, "degrees, random sign", signed=True, families=(DA, AA), wide_high=135, randaugment=3),
    OpSpec("shear", kernels.shear, 0, 0.3, "shear factor on both axes, random signs", signed=True, families=(DA,)),
    OpSpec("shear-x", kernels.shear_x, 0, 0.3, "horizontal shear factor, random sign", signed=True, families=(AA,), wide_high=0.99, randaugment=10),
    OpSpec("shear-y", kernels.shear_y, 0, 0.3, "vertical shear factor, random sign", signed=True, families=(AA,), wide_high=0.99, randaugment=11),
    OpSpec("translate-x", kernels.translate_x, 0, 0.3, "fraction of width, random sign", signed=True, families=(DA, AA), wide_pixels=32, side=2, randaugment=12),
    OpSpec("translate-y", kernels.translate_y, 0, 0.3, "fraction of height, random sign", signed=True, families=(DA, AA), wide_pixels=32, side=1, randaugment=13),
    OpSpec("horizontal-flip", kernels.horizontal_flip, 0, 0.5, "probability of a left-right flip", families=(DA,)),
    OpSpec("vertical-flip", kernels.vertical_flip, 0, 0.5, "probability of an up-down flip", families=(DA,)),
    OpSpec("perspective-transform", kernels.perspective, 0, 0.15, "corner shift as a fraction of the side", families=(EX,)),
    OpSpec("elastic-transform", kernels.elastic, 0, 0.1, "max displacement as a fraction of the side", families=(EX,)),
    # filters
    OpSpec("gaussian-blur", kernels.gaussian_blur, 0, 0.06, "sigma as a fraction of the shorter side", families=(DA,)),
    OpSpec("sharpen", kernels.sharpen, 0, 1.0, "blend weight of a 3x3 sharpen kernel", families=(DA,)),
    OpSpec("emboss", kernels.emboss, 0, 1.0, "blend weight of a 3x3 emboss kernel", families=(DA,)),
    OpSpec("sharpness", kernels.sharpness, 0, 0.9, "PIL enhance factor 1 ± p", signed=True, families=(AA,), wide_high=0.99, randaugment=9),
    # noise and occlusion
    OpSpec("additive-gaussian-noise", kernels.additive_gaussian_noise, 0, 0.2, "noise std (pixel scale 0-1)", families=(DA,)),
    OpSpec("dropout", kernels.dropout, 0, 0.3, "fraction of pixels set to 0", families=(DA,)),
    OpSpec("coarse-dropout", kernels.coarse_dropout, 0, 0.3, "fraction of 8x8-grid cells set to 0", families=(DA,)),
    OpSpec("coarse-salt-pepper", kernels.coarse_salt_pepper, 0, 0.3, "fraction of 8x8-grid cells set to 0 or 1", families=(DA,)),
    OpSpec("cutout", kernels.cutout, 0, 0.5, "square side as a fraction of the shorter side", families=(AA,)),
    # intensity
    OpSpec("gamma-contrast", kernels.gamma_contrast, 0, math.log(2.5), "log gamma, random sign (gamma in [1/2.5, 2.5])", signed=True, families=(DA,)),
    OpSpec("brighten", kernels.brighten, 0, 40 / 255, "value added, random sign (pixel scale 0-1)", signed=True, families=(DA,)),
    OpSpec("brightness", kernels.brightness, 0, 0.9, "PIL enhance factor 1 ± p", signed=True, families=(AA,), wide_high=0.99, randaugment=8),
    OpSpec("contrast", kernels.contrast, 0, 0.9, "PIL enhance factor 1 ± p", signed=True, families=(AA,), wide_high=0.99, randaugment=7),
    OpSpec("invert", kernels.invert, 0, 1.0, "probability of inverting", families=(DA,)),
    OpSpec("solarize", kernels.solarize, 0, 1.0, "inverts pixels at or above 1 - p", families=(AA,), randaugment=4),
    OpSpec("posterize", kernels.posterize, 0, 4, "bits removed (8 - p kept)", families=(AA,), wide_high=6, randaugment=6),
    OpSpec("auto-contrast", kernels.auto_contrast, 0, 0, "none (stretches each channel to 0-1)", identity_at_zero=False, families=(AA,), randaugment=1),
    OpSpec("equalize", kernels.equalize, 0, 0, "none (histogram equalization per channel)", identity_at_zero=False, families=(AA,), randaugment=2),
    OpSpec("histogram-equalize", kernels.histogram_equalize, 0, 1.0, "blend weight of the equalized image", families=(EX,)),
    OpSpec("fog", kernels.fog, 0, 0.7, "haze density", families=(DA,)),
    OpSpec("clouds", kernels.clouds, 0, 0.9, "cloud opacity", families=(DA,)),
    # colour
    OpSpec("color", kernels.color, 0, 0.9, "PIL saturation factor 1 ± p", colour_only=True, signed=True, families=(AA,), wide_high=0.99, randaugment=5),
    OpSpec("grayscale", kernels.grayscale, 0, 1.0, "blend weight of the gray image", colour_only=True, families=(EX,)),
    OpSpec("add-to-hue-and-saturation", kernels.add_to_hue_and_saturation, 0, 0.1, "hue shift (turns) and 2p saturation, random signs", colour_only=True, signed=True, families=(DA,)),
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
RANDAUGMENT_OPS = tuple(op.name for op in sorted((op for op in OPS if op.randaugment is not None), key=lambda op: op.randaugment))
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
# Not autograph-converted: the kernels are plain graph code (their one branch is tf.cond, written out), and converting
# the ~350 functions below took ~2.3 s of every process's first trace on 2 cores.
@tf.autograph.experimental.do_not_convert
def apply_ops(
    images: tf.Tensor, op_ids: tf.Tensor, magnitudes: tf.Tensor, seed: tf.Tensor, available: Sequence[int] | None = None
) -> tf.Tensor:
    """Apply op ``op_ids[i]`` at magnitude ``magnitudes[i]`` to image i: the one dispatch function.

    Images are partitioned by op, each op runs once on its part (skipped when empty), and the parts are
    stitched back in order, so the graph is fixed whatever the policy: policies are data, not code. Partitioning
    rather than running every op on every image and selecting keeps the cost at one op per image, and each op's
    kernel runs batched on its part. The table's flags act here: a ``signed`` op gets its parameter with a
    per-image random sign, a ``colour_only`` op leaves 1-channel images as they are.
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
        spec = OPS[op_index]
        if op_index == IDENTITY or (spec.colour_only and images.shape[-1] != 3):
            outs.append(part)
            continue

        def run(part=part, spec=spec, m=mags[k], s=seeds[k]):
            rng = kernels.Rng(s)
            p = spec.param_of(m)
            if spec.signed:  # the direction, per image, is the op's first draw
                p = rng.sign(tf.shape(part)[0]) * p
            return tf.ensure_shape(spec.fn(part, p, rng), part.shape)

        outs.append(tf.cond(tf.shape(part)[0] > 0, run, lambda part=part: part))
    out = tf.dynamic_stitch(where, outs)
    return tf.ensure_shape(out, images.shape)


# --------------------------------------------------------------------------- docs
def ops_markdown() -> str:
    """The op table as Markdown; ``docs/ops.md`` is this text (a test keeps them equal)."""
    lines = [
        "# Augmentation ops",
        "",
        "Generated from `src/deepaug_pipeline/augment/ops.py` (`OPS`) by "
        "`python -m deepaug_pipeline.augment.ops > docs/ops.md`. A magnitude m ∈ [0, 1] maps linearly to the "
        "parameter: p = low + (high − low) · m. Signed ops draw their direction per image. RandAugment and "
        "TrivialAugment draw from the ops with a RandAugment place, in that order (the RandAugment authors' code; "
        "torchvision lists them in another order, and the draw is uniform, so the order only decides which op a given "
        "seed picks). TrivialAugment-Wide's translate range is in pixels, 0–32 px as torchvision's at any image size.",
        "",
        "| op | parameter | low (m=0) | high (m=1) | TA-Wide high | families | RandAugment place | colour only | identity at m=0 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for op in OPS:
        wide = f"{op.wide_pixels:g} px" if op.wide_pixels else "" if op.wide_high is None else f"{op.wide_high:g}"
        place = "" if op.randaugment is None else str(op.randaugment)
        lines.append(
            f"| {op.name} | {op.param} | {op.low:g} | {op.high:.4g} | {wide} | {', '.join(op.families)} | {place} | "
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
