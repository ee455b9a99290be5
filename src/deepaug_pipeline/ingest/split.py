"""Seeded, stratified splits: search subset, seed validation pool (rest of TRAIN), untouched test."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepaug_pipeline.config import IngestConfig
from deepaug_pipeline.data import ImageSource, LabelledImages, data_fingerprint
from deepaug_pipeline.ingest.validate import DataValidationError
from deepaug_pipeline.seeding import stream_rng


# Raised when a change to the loaders, validation or splitting makes other splits from the same source and settings:
# splits written before are then made again, not reused.
SPLITS_FORMAT = 1


@dataclass(frozen=True)
class DatasetSplits:
    """The three disjoint splits the pipelines work on (search subset, seed validation pool, test), TRAIN whole, and
    what they hold. ``train`` is TRAIN in its own order (the search subset and the pool together): the final models draw from it, so what they train on does not
    depend on how the search split it."""

    search_subset: LabelledImages
    seed_validation_pool: LabelledImages
    test: LabelledImages
    train: LabelledImages
    class_names: list[str]
    made_from: dict = field(default_factory=dict)  # the settings that decided them (``made_from``)
    source_fingerprint: str = ""  # the source they were made from (``ImageSource.fingerprint``)

    def summary(self) -> dict:
        """Sizes, image shape and per-class counts of every split, what the search's data hashes to (its trial log
        records the same) and the settings the splits were made with (JSON-ready)."""

        def counts(split: LabelledImages) -> dict[str, int]:
            per_class = np.bincount(split.y, minlength=len(self.class_names))
            return {name: int(c) for name, c in zip(self.class_names, per_class)}

        splits = {"search_subset": self.search_subset, "seed_validation_pool": self.seed_validation_pool, "test": self.test}
        return {
            "image_shape": list(self.search_subset.x.shape[1:]),
            "n_classes": len(self.class_names),
            "class_names": self.class_names,
            "sizes": {k: len(v) for k, v in splits.items()},
            "class_counts": {k: counts(v) for k, v in splits.items()},
            "content": data_fingerprint(self.search_subset, self.seed_validation_pool),
            "made_from": self.made_from,
            "source_fingerprint": self.source_fingerprint,
            "splits_format": SPLITS_FORMAT,
        }


def stratified_allocation(labels: np.ndarray, n_classes: int, size: int) -> np.ndarray:
    """How many of each class a stratified sample of ``size`` takes (largest remainder, sums to ``size``)."""
    counts = np.bincount(labels, minlength=n_classes)
    exact = counts * (size / counts.sum())
    alloc = np.floor(exact).astype(np.int64)
    short = size - int(alloc.sum())
    order = np.argsort(-(exact - alloc), kind="stable")
    alloc[order[:short]] += 1
    return alloc


def stratified_indices(
    labels: np.ndarray, class_names: list[str], size: int, rng: np.random.Generator, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified sample of ``size`` and of the rest; every class must land on both sides."""
    if size >= len(labels):
        raise DataValidationError(f"the {what} asks for {size} images out of {len(labels)}: it must leave some for the rest")
    n_classes = len(class_names)
    counts = np.bincount(labels, minlength=n_classes)
    alloc = stratified_allocation(labels, n_classes, size)
    for c in np.flatnonzero(counts):
        if alloc[c] < 1 or counts[c] - alloc[c] < 1:
            raise DataValidationError(
                f"class '{class_names[c]}' (label {c}) has {counts[c]} image(s): too few for a stratified "
                f"{what} of {size} out of {counts.sum()} (it would get {alloc[c]} and leave {counts[c] - alloc[c]}); "
                "every class needs at least one image on each side"
            )
    picked = stratified_draw(labels, alloc, rng)
    rest = np.setdiff1d(np.arange(len(labels)), picked, assume_unique=True)
    return picked, rest


def stratified_draw(labels: np.ndarray, alloc: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``alloc[c]`` images drawn at random from each class ``c`` that has any."""
    counts = np.bincount(labels, minlength=len(alloc))
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), size=alloc[c], replace=False) for c in np.flatnonzero(counts)]))


def _take(split: LabelledImages, idx: np.ndarray) -> LabelledImages:
    return LabelledImages(split.x[idx], split.y[idx])


def split_dataset(source: ImageSource, cfg: IngestConfig, seed: int) -> DatasetSplits:
    """Split a validated source; raises before any training if sizes cannot work."""
    names = source.class_names
    train, test = source.train, source.test
    if test is None:
        n_test = int(round(len(train) * cfg.test_fraction))
        test_idx, train_idx = stratified_indices(train.y, names, n_test, stream_rng(seed, "test_holdout"), "test hold-out (ingest.test_fraction)")
        train, test = _take(train, train_idx), _take(train, test_idx)
    n = len(train)
    if cfg.train_set_size >= n:
        raise DataValidationError(
            f"ingest.train_set_size={cfg.train_set_size} is larger than what exists: the training split has {n} "
            "images, and the seed validation pool needs the rest"
        )
    subset_idx, pool_idx = stratified_indices(train.y, names, cfg.train_set_size, stream_rng(seed, "search_subset"), "search subset (ingest.train_set_size)")
    made = made_from(cfg, seed, own_test=source.test is not None)
    return DatasetSplits(_take(train, subset_idx), _take(train, pool_idx), test, train, names, made, source.fingerprint)


def made_from(cfg: IngestConfig, seed: int, own_test: bool = False) -> dict:
    """The settings that decide a source's splits, by dotted key, as JSON stores them: ``test_fraction`` only for a
    source without a test split of its own."""
    settings = cfg.model_dump(mode="json", exclude={"test_fraction"} if own_test else set())
    return {"seed": seed, **{f"ingest.{key}": value for key, value in settings.items()}}


def made_from_now(before: dict, cfg: IngestConfig, seed: int) -> dict:
    """The settings that decide the splits ``made_from`` recorded as ``before``, as they are now, in its form."""
    now = made_from(cfg, seed)
    return {key: now.get(key) for key in before}  # a source with its own test split recorded no test_fraction


def splits_are_current(summary: object, cfg: IngestConfig, seed: int, source_fingerprint: str) -> bool:
    """Whether the splits ``summary`` (their ``dataset_summary``) describes are those ingest would make now, from a
    source that fingerprints to ``source_fingerprint``, with these settings and this code: then ingest need not run
    again."""
    if not isinstance(summary, dict) or summary.get("splits_format") != SPLITS_FORMAT:
        return False
    if not source_fingerprint or summary.get("source_fingerprint") != source_fingerprint:
        return False
    before = summary.get("made_from")
    return isinstance(before, dict) and bool(before) and before == made_from_now(before, cfg, seed)
