"""Forward-pass FLOPs of a Keras model's convolutions and dense layers (2 × multiply-adds)."""

from __future__ import annotations

import keras


def forward_flops(model: keras.Model) -> int:
    """FLOPs of one image's forward pass, counting Conv2D and Dense layers (the rest is noise)."""
    total = 0
    for layer in _leaf_layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1] // layer.groups
            total += 2 * h * w * c_out * kh * kw * c_in
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def training_flops(model: keras.Model) -> int:
    """Per-image FLOPs of one training step: forward + backward ≈ 3 × forward."""
    return 3 * forward_flops(model)


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer
