"""Kedro dataset classes kedro-datasets lacks: an image-classification source and an npz split store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io.core import AbstractDataset, DatasetError

from deepaug_pipeline.config import ConfigError, SourceConfig, parse_config
from deepaug_pipeline.data import ImageSource, LabelledImages
from deepaug_pipeline.ingest.sources import load_source, source_fingerprint
from deepaug_pipeline.run_log import TrialLogStore


class ImageSourceDataset(AbstractDataset[None, ImageSource]):
    """Read-only: loads images and labels from an idx / npz / image_folder / keras source.

    Catalog arguments are those of ``config.SourceConfig`` (``source``, ``path``, ``name``,
    ``class_names``, ``image_size``, ``color_mode``); a wrong one fails when the catalog is built.
    """

    def __init__(self, metadata: dict[str, Any] | None = None, **source: Any) -> None:
        try:
            self._config: SourceConfig = parse_config(SourceConfig, source, "catalog raw_images", "catalog.yml argument")
        except ConfigError as exc:
            raise DatasetError(str(exc)) from exc  # the command line prints the ConfigError it finds as the cause
        self.metadata = metadata

    def load(self) -> ImageSource:
        return load_source(self._config)

    def fingerprint(self) -> str:
        """What ``load`` would read, told from the files' names, sizes and times (see ``source_fingerprint``)."""
        return source_fingerprint(self._config)

    def save(self, data: None) -> None:
        raise DatasetError("ImageSourceDataset is read-only: raw data is never overwritten")

    def _exists(self) -> bool:
        return self._config.source == "keras" or Path(self._config.path).exists()

    def _describe(self) -> dict[str, Any]:
        described = self._config.model_dump(exclude_none=True)
        if self._config.path:  # the hook names it when it is missing
            described["filepath"] = str(Path(self._config.path).resolve())
        return described


class LabelledImagesDataset(AbstractDataset[LabelledImages, LabelledImages]):
    """Images and labels in one uncompressed ``.npz`` (arrays ``x``, ``y``), written atomically."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> LabelledImages:
        if not self._filepath.is_file():
            raise DatasetError(f"missing file {self._filepath}")
        with np.load(self._filepath, allow_pickle=False) as npz:
            return LabelledImages(npz["x"], npz["y"])

    def save(self, data: LabelledImages) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so an interrupted save never leaves a truncated file behind.
        fd, tmp = tempfile.mkstemp(dir=self._filepath.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, x=data.x, y=data.y)
                fh.flush()
                os.fsync(fh.fileno())  # on disk before the rename: a machine crash leaves the old file or the new
            os.chmod(tmp, 0o644)
            os.replace(tmp, self._filepath)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class TrialLogStoreDataset(AbstractDataset[None, TrialLogStore]):
    """The folder of append-only trial logs; the search node appends to it trial by trial. The folder is ``path``:
    Kedro anchors that key (like ``filepath``) to the project, so a run started in a subdirectory resumes the same
    logs."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._directory = Path(path)
        self.metadata = metadata

    def load(self) -> TrialLogStore:
        return TrialLogStore(self._directory)

    def save(self, data: None) -> None:
        raise DatasetError("trial logs are written by the search loop itself, trial by trial")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._directory)}
