"""Ingest: load the configured source, validate it, split it."""

from deepaug_pipeline.pipelines.ingest.pipeline import create_pipeline

__all__ = ["create_pipeline"]
