"""Project CLI: Kedro's own ``kedro run``, but an error the user can fix (bad config or data, a trial log that does
not match, missing or stale inputs, an unknown pipeline name) is printed as its message and exits with status 1,
not inside a few hundred lines of traceback. Other errors keep their traceback. Kedro takes a project's ``cli.py``
over its built-in commands."""

from __future__ import annotations

import click
from kedro.framework.cli.project import run as kedro_run

from deepaug_pipeline.errors import UserError


def user_error(exc: BaseException) -> BaseException | None:
    """The project's own user-fixable error in ``exc``'s explicit cause chain (Kedro raises DatasetError ``from`` a
    dataset's error); an error raised while handling another keeps its traceback. Told by its base class alone: the
    modules that raise them import TensorFlow, and a config error is printed before anything imports it."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__
    return None


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


class FriendlyRun(click.Command):
    def invoke(self, ctx: click.Context):
        names = list(ctx.params.get("pipelines") or []) + ([ctx.params["pipeline"]] if ctx.params.get("pipeline") else [])
        problem = unknown_pipelines(names) if names else None
        if problem:
            raise click.UsageError(problem)
        try:
            return super().invoke(ctx)
        except Exception as exc:
            fixable = user_error(exc)
            if fixable is None:
                raise
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
