"""The image data every part of the library passes around: labelled images, and what a source holds."""

from __future__ import annotations

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
