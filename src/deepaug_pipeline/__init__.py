"""deepaug-pipeline: Bayesian search for image augmentation policies (DeepAugment, rebuilt)."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `import deepaug_pipeline` (as Kedro does) does not pull in TensorFlow.
    if name == "DeepAugment":
        from deepaug_pipeline.api import DeepAugment

        return DeepAugment
    if name == "Policy":
        from deepaug_pipeline.augment.policy import Policy

        return Policy
    if name == "load_dataset":
        from deepaug_pipeline.api import load_dataset

        return load_dataset
    if name == "sample_grid":
        from deepaug_pipeline.augment.grid import sample_grid

        return sample_grid
    raise AttributeError(f"module 'deepaug_pipeline' has no attribute {name!r}")


__all__ = ["DeepAugment", "Policy", "load_dataset", "sample_grid"]
