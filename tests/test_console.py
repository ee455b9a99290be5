"""The Kedro CLI's console: every command registers the pipelines, which must stay quick and quiet."""

from __future__ import annotations

import os
import pickle
import re
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
# Its call is recorded rather than made: importing TensorFlow here would double this test's time and say nothing more.
from deepaug_pipeline import devices
from deepaug_pipeline.hooks import TensorFlowHook
configured = []
devices.configure_tensorflow = lambda: configured.append(True)
hook = TensorFlowHook()
for node in pipelines["ingest"].nodes:
    hook.before_node_run(node)
untagged = [n.name for n in (pipelines["search"] - pipelines["ingest"] + pipelines["evaluate"]).nodes if "tensorflow" not in n.tags]
print(configured, untagged)
hook.before_node_run(pipelines["evaluate"].nodes[0])
print(configured, "tensorflow" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-4:-1] == ["['__default__', 'evaluate', 'ingest', 'search'] []", "[] []", "[True] False"]


def test_kedro_registry_list_prints_no_warning(project: Path):
    """MLflow's "Add type hints to the `predict` method" (about kedro-mlflow's model class) used to come first."""
    result = subprocess.run([sys.executable, "-m", "kedro", "registry", "list"], cwd=project, env=ENV,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.split()[-8:] == ["-", "__default__", "-", "evaluate", "-", "ingest", "-", "search"]
    out = squashed_output(result)
    assert "Addtypehints" not in out and "Warning" not in out and "WARNING" not in out, out[-3000:]


def test_a_users_error_is_told_from_a_bug_without_importing_tensorflow():
    """`kedro run` prints a user-fixable error as its message. Telling it from a bug used to import the modules that
    raise them, TensorFlow with them: 8 s on 2 cores before a refused config was printed."""
    code = """
import sys
from deepaug_pipeline.cli import command_hint, user_error
from deepaug_pipeline.config import ConfigError
from deepaug_pipeline.run_log import TrialLogMismatch
from kedro.io.core import DatasetError
try:
    try:
        raise ConfigError("evaluate.seeds: must be at least 1")
    except ConfigError as exc:
        raise DatasetError("failed while loading data") from exc  # as Kedro wraps a dataset's error
except DatasetError as exc:
    print(repr(user_error(exc)), user_error(RuntimeError("a bug")))
print(command_hint(TrialLogMismatch("config changed", "evaluate")))
print("tensorflow" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-4:-1] == [
        "ConfigError('evaluate.seeds: must be at least 1') None",
        "To start afresh: kedro run --pipelines=evaluate --params=evaluate.fresh_start=true (same --env)",
        "False",
    ]


def test_every_error_the_project_raises_for_the_user_is_printed_as_its_message():
    from deepaug_pipeline.augment.imaging import ImageBatchError
    from deepaug_pipeline.augment.policy import PolicyError
    from deepaug_pipeline.cli import user_error
    from deepaug_pipeline.config import ConfigError
    from deepaug_pipeline.ingest.sources import DataSourceError
    from deepaug_pipeline.ingest.validate import DataValidationError
    from deepaug_pipeline.model_names import ModelConfigError
    from deepaug_pipeline.run_log import StaleSearchOutputs, TrialLogBusy, TrialLogCorrupt, TrialLogMismatch
    from deepaug_pipeline.search.controller import SearchError
    from deepaug_pipeline.search.executors import ExecutorError

    errors = [PolicyError("p"), ConfigError("c"), DataSourceError("d"), DataValidationError("v"), ModelConfigError("m"),
              ImageBatchError("i"), StaleSearchOutputs("s"), TrialLogBusy("b"), TrialLogCorrupt("x"),
              TrialLogMismatch("t", "search"), SearchError("e"), ExecutorError("r")]  # fmt: skip
    assert [user_error(e) for e in errors] == errors
    # still the built-in kinds callers catch them as
    assert all(isinstance(e, ValueError) for e in errors[:6]) and all(isinstance(e, RuntimeError) for e in errors[6:])
    # and they cross a process boundary (a Dask worker, a process pool) as they were
    copies = [pickle.loads(pickle.dumps(e)) for e in errors]
    assert [(type(c), str(c)) for c in copies] == [(type(e), str(e)) for e in errors]
    assert copies[9].section == "search"


def test_kedros_own_refusals_of_conf_are_one_line_naming_the_file_or_environment(tmp_path):
    from kedro.config import OmegaConfigLoader

    from deepaug_pipeline.cli import kedro_config_problem

    conf = tmp_path / "conf"
    for env in ("base", "local", "gpu"):
        (conf / env).mkdir(parents=True)
    (conf / "base" / "parameters.yml").write_text("seed: 1\n")

    def problem(env: str) -> str | None:
        try:
            OmegaConfigLoader(str(conf), base_env="base", default_run_env=env)["parameters"]
        except Exception as exc:  # noqa: BLE001 - whatever Kedro raises, as the command line gets it
            return kedro_config_problem(exc)
        return None

    assert problem("local") is None and kedro_config_problem(RuntimeError("a bug")) is None
    # The command line refuses an unknown --env before the session starts (Kedro ran on without its parameters).
    from deepaug_pipeline.cli import unknown_environment

    assert unknown_environment("gpu", str(conf)) is None
    assert unknown_environment("nonexistent", str(conf)) == f"no config environment 'nonexistent' ({conf / 'nonexistent'}); this project has: base, gpu, local"
    assert problem("nonexistent") == f"no config environment 'nonexistent' ({conf / 'nonexistent'}); this project has: base, gpu, local"
    (conf / "local" / "parameters.yml").write_text("evaluate:\n  seeds: 2\n   epochs: 3\n")
    assert re.fullmatch(rf"Invalid YAML or JSON file {re.escape(str(conf / 'local' / 'parameters.yml'))}, unable to read line 2, "
                        r"position \d+\. \(mapping values are not allowed in this context\)", problem("local") or "")  # fmt: skip
    (conf / "local" / "parameters.yml").unlink()
    (conf / "base" / "parameters_more.yml").write_text("seed: 2\n")
    assert re.fullmatch(r"Duplicate keys found in .*parameters.*\.yml and .*parameters.*\.yml: seed \(a key may be set once per "
                        r"environment, across all its files\)", problem("local") or "")  # fmt: skip


def test_a_refused_trial_log_is_printed_with_the_command_that_starts_afresh():
    """The run command's own handling, end to end in this process: the library's error as its message, then the
    command that acts on it, exit code 1 and no traceback (the kill test sees the refusal itself in-process)."""
    import click
    from click.testing import CliRunner

    from deepaug_pipeline.cli import FriendlyRun
    from deepaug_pipeline.run_log import TrialLogMismatch

    def refuse() -> None:
        raise TrialLogMismatch("the trial log x.jsonl was written under a different search config (seed: 1 → 2)", "search")

    result = CliRunner().invoke(click.Group(commands=[FriendlyRun(name="run", callback=refuse)]), ["run"], env={"KEDRO_ENV": ""})
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines() == [
        "Error (TrialLogMismatch): the trial log x.jsonl was written under a different search config (seed: 1 → 2)",
        "To start afresh: kedro run --pipelines=search --params=search.fresh_start=true (same --env)",
    ]


def test_the_run_command_defaults_to_the_runner_that_reuses_current_splits():
    """Without --runner, `kedro run` runs the project's runner; a runner the user names is kept."""
    import click
    from click.testing import CliRunner
    from kedro.framework.cli.project import run as kedro_run
    from kedro.utils import load_obj

    from deepaug_pipeline.cli import FriendlyRun
    from deepaug_pipeline.runner import SplitsReusingRunner

    chosen = []
    command = FriendlyRun(name="run", params=kedro_run.params, callback=lambda **params: chosen.append(params["runner"]))
    group = click.Group(commands=[command])
    for args in (["run"], ["run", "--runner=SequentialRunner"]):
        result = CliRunner().invoke(group, args, env={"KEDRO_ENV": ""})
        assert result.exit_code == 0, result.output
    assert load_obj(chosen[0], "kedro.runner") is SplitsReusingRunner and chosen[1] == "SequentialRunner"
