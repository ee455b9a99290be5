"""Check raw arrays and bring them to one form: uint8 images (N, H, W, C), int64 labels (N,)."""

from __future__ import annotations

import numpy as np

from deepaug_pipeline.config import MIN_IMAGE_SIDE
from deepaug_pipeline.data import ImageSource, LabelledImages
from deepaug_pipeline.errors import UserError


class DataValidationError(UserError, ValueError):
    """The data is not a usable image classification dataset; the message says why and where."""


def _to_uint8(x: np.ndarray, where: str, value_range: tuple[float, float] | None) -> np.ndarray:
    """Pixel values → uint8 by one explicit rule (README "Pixel values"):

    - ``value_range: [lo, hi]`` given: every value must lie in it, and [lo, hi] maps linearly onto 0–255;
    - otherwise uint8 is taken as it is, other integers as 0–255 if they fit, and floats as 0–1 if they fit.

    Anything the rule cannot place (floats beyond [0, 1], 16-bit values beyond 255) is refused with the range found
    and the key that states it: a guess would store the dataset near-black or clipped white without a word.
    """
    if x.dtype.kind not in "iuf":  # bool ("b") included
        raise DataValidationError(f"{where}: pixel dtype {x.dtype} is not numeric")
    if x.dtype.kind == "f":
        finite = np.isfinite(x)
        if not finite.all():
            bad = int(np.size(finite) - np.count_nonzero(finite))
            raise DataValidationError(f"{where}: {bad} non-finite pixel value(s) (NaN or inf)")
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if value_range is not None:
        low, high = value_range
        if x.dtype.kind in "iu" and high > np.iinfo(x.dtype).max:  # e.g. a 16-bit range left on 8-bit data: near-black
            raise DataValidationError(
                f"{where}: ingest.value_range [{low:g}, {high:g}] reaches beyond what {x.dtype} pixels can hold "
                f"({np.iinfo(x.dtype).max}), so every image would be stored near-black; state the range these values have"
            )
        outside = int(np.count_nonzero((x < low) | (x > high)))
        if outside:
            raise DataValidationError(
                f"{where}: {outside} pixel value(s) lie outside ingest.value_range [{low:g}, {high:g}] "
                f"(found [{lo:g}, {hi:g}]); state the range the values really have"
            )
        return np.round((x.astype(np.float64) - low) * (255.0 / (high - low))).astype(np.uint8)
    if x.dtype == np.uint8:
        return x
    if lo < 0:
        raise DataValidationError(
            f"{where}: pixel values must be >= 0, found minimum {lo:g}; state their range with ingest.value_range"
        )
    if x.dtype.kind == "f":
        if hi <= 1.0:
            return np.round(x * 255.0).astype(np.uint8)
        raise DataValidationError(
            f"{where}: float pixel values reach {hi:g}, beyond [0, 1], so their range is ambiguous; state it with "
            "ingest.value_range, e.g. [0, 255] for 0-255 values stored as floats"
        )
    if hi > 255:
        raise DataValidationError(
            f"{where}: {x.dtype} pixel values reach {hi:g}, beyond 0-255 (16-bit data?); state their range with "
            "ingest.value_range, e.g. [0, 65535] for 16-bit or [0, 4095] for 12-bit images"
        )
    return x.astype(np.uint8)


def _images_nhwc(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataValidationError(
            f"{where}: images must have rank 3 (N, H, W) or 4 (N, H, W, C), got rank {x.ndim} with shape {x.shape}"
        )
    if x.shape[-1] not in (1, 3):
        raise DataValidationError(f"{where}: images must have 1 or 3 channels (NHWC), got shape {x.shape}")
    if min(x.shape[1], x.shape[2]) < MIN_IMAGE_SIDE:
        raise DataValidationError(
            f"{where}: images are {x.shape[1]}x{x.shape[2]}; at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} is needed"
        )
    return x


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataValidationError(
            f"{where}: labels must be integer class ids of shape (N,), got shape {y.shape} (one-hot? use argmax)"
        )
    if y.dtype.kind not in "iu":
        raise DataValidationError(f"{where}: labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64)


def _validate_split(split: LabelledImages, where: str, value_range: tuple[float, float] | None) -> LabelledImages:
    x = np.asarray(split.x)
    y = np.asarray(split.y)
    if x.ndim == 0 or len(x) == 0:
        raise DataValidationError(f"{where}: no images")
    if y.ndim == 0:
        raise DataValidationError(f"{where}: labels must be an array of class ids of shape (N,), got a single value")
    if len(y) != len(x):
        raise DataValidationError(f"{where}: {len(x)} images but {len(y)} labels (x/y length mismatch)")
    x = _images_nhwc(x, where)
    return LabelledImages(np.ascontiguousarray(_to_uint8(x, where, value_range)), _labels(y, where))


def validate_source(
    source: ImageSource, where: str = "raw_images", value_range: tuple[float, float] | None = None
) -> ImageSource:
    """Validate every split of ``source`` and return it normalised; errors name ``where`` and the split."""
    train = _validate_split(source.train, f"{where} (train split, {source.origin})", value_range)
    # An empty test split is refused as "no images", not taken for an absent one (a hold-out carved from train).
    test = _validate_split(source.test, f"{where} (test split, {source.origin})", value_range) if source.test is not None else None
    if test is not None and test.x.shape[1:] != train.x.shape[1:]:
        raise DataValidationError(
            f"{where}: train images are {train.x.shape[1:]} but test images are {test.x.shape[1:]}"
        )
    labels = train.y if test is None else np.concatenate([train.y, test.y])
    n_classes = len(source.class_names) if source.class_names else int(labels.max()) + 1
    if labels.min() < 0 or labels.max() >= n_classes:
        named = f"{n_classes} class names" if source.class_names else "no class names, so the largest label sets the count"
        raise DataValidationError(
            f"{where} ({source.origin}): labels must be class ids 0..{n_classes - 1} ({named}), "
            f"found range [{labels.min()}, {labels.max()}]"
        )
    present = np.unique(train.y)
    if source.class_names:
        missing = [f"'{source.class_names[c]}'" for c in np.setdiff1d(np.arange(n_classes), present)]
        if missing:
            raise DataValidationError(f"{where} ({source.origin}): class(es) {', '.join(missing)} have no training image; "
                                      "remove them from class_names, or add images")  # fmt: skip
    else:
        empty = np.setdiff1d(np.arange(n_classes), present)  # a class seen only in the test split cannot be learnt
        if len(empty):
            runs = np.split(empty, np.flatnonzero(np.diff(empty) > 1) + 1)
            ranges = ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)
            raise DataValidationError(
                f"{where}: without class names the labels are read as classes 0–{n_classes - 1}, but label(s) {ranges} "
                f"have no training image ({len(empty)} of {n_classes}). Renumber the labels 0..K-1"
            )
    if len(present) < 2:
        raise DataValidationError(f"{where}: the training split has {len(present)} class(es); at least 2 are needed")
    class_names = source.class_names or [str(i) for i in range(n_classes)]
    return ImageSource(train=train, test=test, class_names=list(class_names), origin=source.origin, fingerprint=source.fingerprint)
