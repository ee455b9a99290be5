"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from deepaug_pipeline.hooks import ConfigValidationHook

# kedro-mlflow registers its own hooks through its entry point.
HOOKS = (ConfigValidationHook(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment (test, deepaugment, local) overrides single keys of a section, not the whole section.
    "merge_strategy": {"parameters": "soft"},
}
