"""deepaug-pipeline: Bayesian search for image augmentation policies (DeepAugment, rebuilt)."""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "DeepAugment": "deepaug_pipeline.api",
    "Policy": "deepaug_pipeline.augment.policy",
    "load_dataset": "deepaug_pipeline.api",
    "sample_grid": "deepaug_pipeline.augment.grid",
}


def __getattr__(name: str):
    # Lazy, so `import deepaug_pipeline` (as Kedro does) does not pull in TensorFlow. The first public name loads it,
    # with its native libraries' start-up notices kept off the console (`import keras` first would print them), and
    # registers the policy layer, so a process that only loads a saved model (keras.models.load_model) can. Listing
    # the GPUs starts CUDA's platform (whose notices come then, not at import) without setting anything on them.
    if name not in _PUBLIC:
        raise AttributeError(f"module 'deepaug_pipeline' has no attribute {name!r}")
    from deepaug_pipeline.devices import start_up_notices_filtered

    with start_up_notices_filtered():
        module = importlib.import_module(_PUBLIC[name])
        importlib.import_module("deepaug_pipeline.augment.layer")
        importlib.import_module("tensorflow").config.list_physical_devices("GPU")
    globals()[name] = getattr(module, name)  # found here from now on: this hook runs once per name
    return globals()[name]


__all__ = list(_PUBLIC)
