"""A Keras layer that applies a policy in training only; saved and loaded with the ``.keras`` format."""

from __future__ import annotations

import keras
import tensorflow as tf

from deepaug_pipeline.augment.policy import Policy, augment_batch


@keras.saving.register_keras_serializable(package="deepaug_pipeline")
class PolicyAugmentation(keras.layers.Layer):
    """Augments each image of a batch with ``policy`` when ``training`` is true; identity otherwise."""

    def __init__(self, policy: dict, seed: int | None = None, value_range=None, **kwargs):
        super().__init__(**kwargs)
        self.policy = Policy.from_dict(policy)
        self.seed = seed
        self.value_range = tuple(value_range) if value_range is not None else None
        self._tensors = self.policy.tensors()
        self._seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training:
            return inputs
        seed = tf.cast(self._seed_generator.next(), tf.int64)
        return augment_batch(tf.convert_to_tensor(inputs), self._tensors, seed, self.value_range, self.policy.op_indices())

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "policy": self.policy.to_dict(), "seed": self.seed, "value_range": self.value_range}
