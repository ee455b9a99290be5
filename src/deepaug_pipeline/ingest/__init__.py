"""Load, validate and split labelled image datasets (no Kedro here)."""

from deepaug_pipeline.ingest.sources import DataSourceError, load_source
from deepaug_pipeline.ingest.split import DatasetSplits, split_dataset
from deepaug_pipeline.ingest.validate import DataValidationError, validate_source

__all__ = [
    "DataSourceError",
    "DataValidationError",
    "DatasetSplits",
    "load_source",
    "split_dataset",
    "validate_source",
]
