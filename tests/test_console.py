"""The Kedro CLI's console: every command registers the pipelines, which must stay quick and quiet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import squashed_output

ENV = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}


def test_registering_the_pipelines_imports_no_tensorflow():
    """The nodes import TensorFlow (and Keras, Matplotlib) when they run: loading it took seconds of every command.
    Kedro also resolves every node's type hints when a run starts, so those must resolve without it too."""
    code = """
import sys, typing
from kedro.framework.project import configure_project
configure_project("deepaug_pipeline")
from deepaug_pipeline.pipeline_registry import register_pipelines
pipelines = register_pipelines()
for pipeline in pipelines.values():
    for node in pipeline.nodes:
        typing.get_type_hints(node.func)
print(sorted(pipelines), sorted(m for m in ("tensorflow", "keras", "matplotlib") if m in sys.modules))
# TensorFlowHook configures TensorFlow before the tagged nodes (every search and evaluate node), never for ingest's.
from deepaug_pipeline.hooks import TensorFlowHook
hook = TensorFlowHook()
for node in pipelines["ingest"].nodes:
    hook.before_node_run(node)
untagged = [n.name for n in (pipelines["search"] - pipelines["ingest"] + pipelines["evaluate"]).nodes if "tensorflow" not in n.tags]
print("tensorflow" in sys.modules, untagged)
hook.before_node_run(pipelines["evaluate"].nodes[0])
print("tensorflow" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-4:-1] == ["['__default__', 'evaluate', 'ingest', 'search'] []", "False []", "True"]


def test_kedro_registry_list_prints_no_warning(project: Path):
    """MLflow's "Add type hints to the `predict` method" (about kedro-mlflow's model class) used to come first."""
    result = subprocess.run([sys.executable, "-m", "kedro", "registry", "list"], cwd=project, env=ENV,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.split()[-8:] == ["-", "__default__", "-", "evaluate", "-", "ingest", "-", "search"]
    out = squashed_output(result)
    assert "Addtypehints" not in out and "Warning" not in out and "WARNING" not in out, out[-3000:]
