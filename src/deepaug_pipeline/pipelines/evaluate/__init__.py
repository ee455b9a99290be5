"""Evaluate: the final model per strategy and seed, and the report."""

from deepaug_pipeline.pipelines.evaluate.pipeline import create_pipeline

__all__ = ["create_pipeline"]
