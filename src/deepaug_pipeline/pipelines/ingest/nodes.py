"""Ingest nodes: thin wrappers over ``deepaug_pipeline.ingest``."""

from __future__ import annotations

from deepaug_pipeline.config import IngestConfig, parse_config
from deepaug_pipeline.data import ImageSource, LabelledImages
from deepaug_pipeline.ingest import split_dataset, validate_source


def validate_images(raw_images: ImageSource, ingest: dict) -> ImageSource:
    """Check the raw images and labels and bring them to uint8 NHWC."""
    return validate_source(raw_images, "raw_images", parse_config(IngestConfig, ingest, "ingest").value_range)


def split_images(
    images: ImageSource, ingest: dict, seed: int
) -> tuple[LabelledImages, LabelledImages, LabelledImages, LabelledImages, dict]:
    """Split into the stratified search subset, the seed validation pool and the untouched test split; TRAIN whole
    is kept for the final models."""
    splits = split_dataset(images, parse_config(IngestConfig, ingest, "ingest"), seed)
    return splits.search_subset, splits.seed_validation_pool, splits.test, splits.train, splits.summary()
