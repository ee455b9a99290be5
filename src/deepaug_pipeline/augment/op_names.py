"""Every augmentation op's name, in the order of the op table (``ops.OPS``), without importing TensorFlow: config
validation checks ``search.ops`` against these, so validating parameters stays cheap. ``ops`` refuses to import if
its table's names differ from these, so the two cannot drift apart."""

from __future__ import annotations

OP_NAMES: tuple[str, ...] = (
    "identity",
    # geometric
    "crop", "rotate", "shear", "shear-x", "shear-y", "translate-x", "translate-y", "horizontal-flip", "vertical-flip",
    "perspective-transform", "elastic-transform",
    # filters
    "gaussian-blur", "sharpen", "emboss", "sharpness",
    # noise and occlusion
    "additive-gaussian-noise", "dropout", "coarse-dropout", "coarse-salt-pepper", "cutout",
    # intensity
    "gamma-contrast", "brighten", "brightness", "contrast", "invert", "solarize", "posterize", "auto-contrast",
    "equalize", "histogram-equalize", "fog", "clouds",
    # colour
    "color", "grayscale", "add-to-hue-and-saturation",
)  # fmt: skip
