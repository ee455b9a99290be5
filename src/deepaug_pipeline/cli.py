"""Project CLI: Kedro's own ``kedro run``, but an error the user can fix (bad config or data, a trial log that does
not match, missing or stale inputs, an unknown pipeline name) is printed as its message and exits with status 1,
not inside a few hundred lines of traceback; so is Kedro's own refusal of the conf/ folder (an environment that does
not exist, a YAML file that does not parse, a key set twice in one environment). Other errors keep their traceback. Kedro takes a project's ``cli.py``
over its built-in commands."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import click
from kedro.framework.cli.project import run as kedro_run

from deepaug_pipeline.errors import UserError


def user_error(exc: BaseException) -> BaseException | None:
    """The project's own user-fixable error in ``exc``'s explicit cause chain (Kedro raises DatasetError ``from`` a
    dataset's error); an error raised while handling another keeps its traceback. Told by its base class alone: the
    modules that raise them import TensorFlow, and a config error is printed before anything imports it."""
    return next((e for e in _chain(exc) if isinstance(e, UserError)), None)


def _chain(exc: BaseException | None, implicit: bool = False) -> Iterator[BaseException]:
    """``exc`` and the errors it was raised ``from`` (with ``implicit``, also those it was raised while handling),
    each once."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or (exc.__context__ if implicit else None)


def kedro_config_problem(exc: BaseException) -> str | None:
    """What is wrong in conf/, when Kedro's config loader refused it, in one line naming the file or environment."""
    import yaml
    from kedro.config import MissingConfigException

    for error in _chain(exc, implicit=True):
        message = str(error)
        if isinstance(error, MissingConfigException) and "configuration path" in message:
            return _no_environment(Path(message.rsplit(": ", 1)[-1].strip()))
        if isinstance(error, yaml.YAMLError):
            detail = getattr(error.__cause__, "problem", None)
            return f"{message}{f' ({detail})' if detail else ''}"
        if isinstance(error, ValueError) and message.startswith("Duplicate keys found in"):
            return f"{message} (a key may be set once per environment, across all its files)"
    return None


def _no_environment(env: Path) -> str:
    there = sorted(d.name for d in env.parent.iterdir() if d.is_dir()) if env.parent.is_dir() else []
    return f"no config environment '{env.name}' ({env}); this project has: {', '.join(there) or 'none'}"


def unknown_environment(env: str, conf_source: str | None) -> str | None:
    """``--env`` naming no folder of the project's conf/ (Kedro would run on, without its parameters, and fail later)."""
    from kedro.framework.project import settings
    from kedro.utils import find_kedro_project

    conf = Path(conf_source) if conf_source else (find_kedro_project(Path.cwd()) or Path.cwd()) / settings.CONF_SOURCE
    if not conf.is_dir() or (conf / env).is_dir():  # a packaged archive of conf/: Kedro reads it itself
        return None
    return _no_environment(conf / env)


def command_hint(exc: BaseException) -> str | None:
    """The command that acts on a library error's advice (the library itself names config keys, not commands)."""
    from deepaug_pipeline.run_log import StaleSearchOutputs, TrialLogMismatch

    if isinstance(exc, TrialLogMismatch):
        return f"To start afresh: kedro run --pipelines={exc.section} --params={exc.section}.fresh_start=true (same --env)"
    if isinstance(exc, StaleSearchOutputs):
        return "To bring the search outputs up to date: kedro run --pipelines=search (same --env)"
    return None


def unknown_pipelines(names: list[str]) -> str | None:
    from kedro.framework.project import pipelines

    valid = sorted(pipelines.keys())
    unknown = [n for n in names if n not in valid]
    if not unknown:
        return None
    return f"no pipeline named {', '.join(repr(n) for n in unknown)}; this project has: {', '.join(valid)}"


# Without --runner, a run reuses splits that ingest would make again (runner.py).
PROJECT_RUNNER = "deepaug_pipeline.runner.SplitsReusingRunner"


class FriendlyRun(click.Command):
    def invoke(self, ctx: click.Context):
        names = list(ctx.params.get("pipelines") or []) + ([ctx.params["pipeline"]] if ctx.params.get("pipeline") else [])
        problem = unknown_pipelines(names) if names else None
        env = ctx.params.get("env") or os.environ.get("KEDRO_ENV")  # Kedro reads the variable when --env is not given
        problem = problem or (unknown_environment(env, ctx.params.get("conf_source")) if env else None)
        if problem:
            raise click.UsageError(problem)
        if "runner" in ctx.params and not ctx.params["runner"]:
            ctx.params["runner"] = PROJECT_RUNNER
        try:
            return super().invoke(ctx)
        except Exception as exc:
            fixable = user_error(exc)
            if fixable is None:
                problem = kedro_config_problem(exc)
                if problem is None:
                    raise
                click.secho(f"Error (conf/): {problem}", fg="red", err=True)
                ctx.exit(1)
            click.secho(f"Error ({type(fixable).__name__}): {fixable}", fg="red", err=True)
            hint = command_hint(fixable)
            if hint:
                click.echo(hint, err=True)
            ctx.exit(1)


@click.group(name="deepaug_pipeline")
def cli() -> None:
    """deepaug-pipeline's project commands."""


# Module level too: `python -m deepaug_pipeline` finds the project's run command as `cli.run`.
run = FriendlyRun(name="run", params=kedro_run.params, callback=kedro_run.callback, help=kedro_run.help,
                  short_help=kedro_run.short_help, context_settings=kedro_run.context_settings)  # fmt: skip
cli.add_command(run)
