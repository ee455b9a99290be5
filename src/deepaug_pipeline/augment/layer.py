"""A Keras layer that applies a policy in training only; saved and loaded with the ``.keras`` format."""

from __future__ import annotations

import keras
import tensorflow as tf

from deepaug_pipeline.augment import imaging
from deepaug_pipeline.augment.policy import Policy, base_then_policy


@keras.saving.register_keras_serializable(package="deepaug_pipeline")
class PolicyAugmentation(keras.layers.Layer):
    """Augments each image of a batch with ``policy`` when ``training`` is true; identity otherwise.

    A policy from the search records the base augmentation it was found on top of (``metadata.base_augmentation``,
    e.g. crop + flip); with ``with_base`` (the default) that base runs first, as in the search and in evaluate.
    """

    def __init__(self, policy: dict, seed: int | None = None, value_range=None, with_base: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.policy = Policy.from_dict(policy)
        self.seed = seed
        self.value_range = tuple(value_range) if value_range is not None else None
        self.with_base = with_base
        self._base = self.policy.base_tensor(with_base)
        self._tensors = self.policy.tensors()
        self._seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        # Its image ops (projective transforms, DynamicPartition) have no XLA kernels: Keras's jit_compile="auto"
        # turns XLA on where a GPU is found unless a layer says so, and the first training step would fail there.
        self.supports_jit = False

    def build(self, input_shape):
        imaging.check_batch_shape(input_shape)  # when the model is built, not at its first training step
        super().build(input_shape)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        return self.augment(inputs, tf.cast(self._seed_generator.next(), tf.int64))

    def augment(self, inputs, seed: tf.Tensor) -> tf.Tensor:
        """The base (if any), then the policy, under ``seed`` (int64, shape [2]): the same seed, the same draws."""
        return base_then_policy(inputs, self._tensors, self.policy.op_indices(), self._base, seed, self.value_range)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "policy": self.policy.to_dict(), "seed": self.seed,
                "value_range": self.value_range, "with_base": self.with_base}  # fmt: skip
