"""Search pipeline: ingest → seed validation pool → search loop → top policies."""

from kedro.pipeline import Pipeline

from deepaug_pipeline.pipelines import ingest


def create_pipeline(**kwargs) -> Pipeline:
    return ingest.create_pipeline()
