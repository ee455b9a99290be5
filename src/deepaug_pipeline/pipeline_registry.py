"""Project pipelines, found by ``find_pipelines``; ``search`` (ingest + search) is the default."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from deepaug_pipeline.pipelines import ingest, search


def search_with_ingest() -> Pipeline:
    """A search starts from the raw images. Built from the modules, not from ``find_pipelines``' result, which holds
    only the pipelines a command asked for."""
    return ingest.create_pipeline() + search.create_pipeline()


def register_pipelines() -> dict[str, Pipeline]:
    # Kedro registers the pipelines a command asks for (all of them for `kedro run` and `registry list`); their
    # nodes import TensorFlow only when they run (tests/test_console.py).
    pipelines = find_pipelines(raise_errors=True)
    if "search" in pipelines:
        pipelines["search"] = search_with_ingest()
    if "__default__" in pipelines:
        pipelines["__default__"] = search_with_ingest()
    return pipelines
