"""Project pipelines, found by ``find_pipelines``; ``search`` is the default."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    # Kedro registers the pipelines for every command; their nodes import TensorFlow only when they run
    # (tests/test_console.py).
    pipelines = find_pipelines(raise_errors=True)
    if "search" in pipelines:
        pipelines["__default__"] = pipelines["search"]
    return pipelines
