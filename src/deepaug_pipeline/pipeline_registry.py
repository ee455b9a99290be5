"""Project pipelines, found by ``find_pipelines``; ``search`` is the default."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from deepaug_pipeline.devices import start_up_notices_filtered


def register_pipelines() -> dict[str, Pipeline]:
    with start_up_notices_filtered():  # the pipelines' modules import TensorFlow
        pipelines = find_pipelines(raise_errors=True)
    if "search" in pipelines:
        pipelines["__default__"] = pipelines["search"]
    return pipelines
