"""The image data every part of the library passes around: labelled images, and what a source holds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LabelledImages:
    """Images (N, H, W, C) and integer labels (N,)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class ImageSource:
    """What a source holds: a training split, an optional test split and class names."""

    train: LabelledImages
    test: LabelledImages | None
    class_names: list[str] | None
    origin: str = ""
    notes: list[str] = field(default_factory=list)
    fingerprint: str = ""  # the source's files as they were when read (``ingest.sources.source_fingerprint``)


def data_fingerprint(*splits: LabelledImages) -> str:
    """A hash of the images and labels a run trains and validates on: another dataset of the same shape and size
    is another run, never a resumed one."""
    digest = hashlib.sha256()
    for array in (a for split in splits for a in (split.x, split.y)):
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()[:16]
