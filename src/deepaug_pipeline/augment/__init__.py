"""Augmentation engine: TensorFlow ops, policies, baselines, a Keras layer (no Kedro here)."""
