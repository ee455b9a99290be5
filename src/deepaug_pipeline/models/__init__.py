"""Child CNNs and the final WRN, built by name (or a dotted path to the user's own builder).

Every builder takes ``(input_shape, n_classes, **options)`` and returns an unbuilt-optimizer
``keras.Model`` that maps float32 images in [0, 1] to class logits (or softmax probabilities).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from deepaug_pipeline.model_names import ModelConfigError, custom_builder, wrn_shape


def basiccnn(input_shape, n_classes: int, dropout: float = 0.25) -> keras.Model:
    """DeepAugment's child (the Keras CIFAR-10 example): ≈1.25M parameters at 32×32×3, ≈0.9M at 28×28×1."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(dropout),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(dropout),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(2 * dropout),
            layers.Dense(n_classes),
        ],
        name="basiccnn",
    )


def fastcnn(input_shape, n_classes: int, width: int = 32, dense: int = 128, dropout: float = 0.0) -> keras.Model:
    """The default CPU search child: two conv stages and a small dense head (≈0.42M parameters at 28×28×1).

    About a quarter of basiccnn's FLOPs. No dropout by default: augmentation is the regulariser the search
    measures, and without one this child overfits 2000 images within ~20 epochs, so a good policy beats
    no augmentation while a bad one falls below it (benchmarks/child_quality.py checks this ordering).
    """
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(width, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(2 * width, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dropout(dropout),
            layers.Dense(dense, activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(n_classes),
        ],
        name="fastcnn",
    )


def wide_resnet(
    input_shape, n_classes: int, depth: int = 28, width: int = 10, dropout: float = 0.0, weight_decay: float = 5e-4
) -> keras.Model:
    """Pre-activation Wide ResNet (Zagoruyko & Komodakis 2016): depth = 6N + 4, widths 16k/32k/64k, strided downsampling.

    BatchNorm momentum 0.9 (PyTorch's 0.1, as in the reference code): Keras' 0.99 leaves the moving statistics
    far from converged in short CPU runs, and inference accuracy then collapses.
    """
    if (depth - 4) % 6 != 0 or depth < 10:
        raise ModelConfigError(f"wrn depth must be 6N + 4 (10, 16, 22, 28, 40, ...), got {depth}")
    n = (depth - 4) // 6
    reg = keras.regularizers.l2(weight_decay / 2) if weight_decay else None

    def conv(filters, kernel, stride=1):
        return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, kernel_regularizer=reg, kernel_initializer="he_normal")

    def block(x, filters, stride):
        pre = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
        shortcut = x if (stride == 1 and x.shape[-1] == filters) else conv(filters, 1, stride)(pre)
        y = conv(filters, 3, stride)(pre)
        y = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(y))
        if dropout:
            y = layers.Dropout(dropout)(y)
        y = conv(filters, 3)(y)
        return layers.Add()([shortcut, y])

    inputs = keras.Input(input_shape)
    x = conv(16, 3)(inputs)
    for group, filters in enumerate((16 * width, 32 * width, 64 * width)):
        for i in range(n):
            x = block(x, filters, stride=2 if (group > 0 and i == 0) else 1)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(n_classes, kernel_regularizer=reg)(x)
    return keras.Model(inputs, outputs, name=f"wrn_{depth}_{width}")


BUILTIN: dict[str, Callable[..., keras.Model]] = {"basiccnn": basiccnn, "fastcnn": fastcnn}


def resolve_builder(name: str) -> Callable[..., keras.Model]:
    """``basiccnn`` | ``fastcnn`` | ``wrn_<depth>_<width>`` | ``package.module.function`` (or ``package.module:function``)."""
    if name in BUILTIN:
        return BUILTIN[name]
    shape = wrn_shape(name)
    if shape is not None:
        return lambda input_shape, n_classes, **kw: wide_resnet(input_shape, n_classes, *shape, **kw)
    return custom_builder(name)


def build_model(name: str, input_shape, n_classes: int, **options) -> keras.Model:
    """Build a model by name; a custom builder must return a keras.Model with ``n_classes`` outputs."""
    model = resolve_builder(name)(tuple(input_shape), n_classes, **options)
    if not isinstance(model, keras.Model):
        raise ModelConfigError(f"model '{name}': the builder returned {type(model).__name__}, not a keras.Model")
    if model.output_shape[-1] != n_classes:
        raise ModelConfigError(f"model '{name}': output has {model.output_shape[-1]} units, the data has {n_classes} classes")
    return model


def outputs_probabilities(model: keras.Model) -> bool:
    """True when the model already ends in a softmax (then the loss must not apply it again): an activation of its
    last layer (``activation="softmax"``, ``tf.nn.softmax``, an ``Activation`` layer), a ``Softmax`` layer, or a
    nested model that ends in one."""
    import tensorflow as tf

    last = model.layers[-1]
    if isinstance(last, keras.Model):
        return outputs_probabilities(last)
    return isinstance(last, keras.layers.Softmax) or getattr(last, "activation", None) in (keras.activations.softmax, tf.nn.softmax)
