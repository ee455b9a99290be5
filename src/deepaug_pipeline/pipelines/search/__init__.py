"""Search: ingest, then the Bayesian search loop over augmentation policies."""

from deepaug_pipeline.pipelines.search.pipeline import create_pipeline

__all__ = ["create_pipeline"]
