"""Kedro project settings."""

import logging
import os
import sys
import warnings

from kedro.config import OmegaConfigLoader

from deepaug_pipeline.hooks import ConfigValidationHook, RunSummaryHook, TensorFlowHook
from deepaug_pipeline.tracking_guard import GuardedMlflowHook

# MLflow asks for type hints on the predict method of kedro-mlflow's KedroPipelineModel when that class is defined
# (GuardedMlflowHook below imports it), and this project logs no pyfunc model. MLflow turns UserWarnings back on
# around that check (catch_warnings + simplefilter("once")), so no warnings filter reaches it; Kedro's RichHandler
# sends warnings to the "py.warnings" logger, and this filter drops that one message there.
logging.getLogger("py.warnings").addFilter(lambda record: "Add type hints to the `predict` method" not in record.getMessage())

# kedro-mlflow's hooks run behind a bounded check of the tracking server (tracking_guard.py), not from its entry
# point. Hooks registered later run first: parameters are validated before the server is asked anything.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow", "kedro_mlflow")  # the distribution name is spelt both ways
HOOKS = (GuardedMlflowHook(), ConfigValidationHook(), RunSummaryHook(), TensorFlowHook())

# Kedro logs through rich, which wraps output that is not a terminal (a log file, CI) at 80 columns and splits
# every trial line and the closing summary; rich reads COLUMNS at each write.
if not sys.stderr.isatty():
    os.environ.setdefault("COLUMNS", "200")

# Kedro's and kedro-mlflow's own calls into OmegaConf, which nothing in this project can act on.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment (test, deepaugment, local) overrides single keys of a section, not the whole section.
    "merge_strategy": {"parameters": "soft"},
}
