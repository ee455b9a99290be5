"""Raw image sources: MNIST-format IDX files, npz arrays, image folders, keras.datasets.

Loaders return arrays as they are on disk; ``validate.validate_source`` checks
and normalises them (uint8, NHWC) afterwards, so every source gets the same checks.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from deepaug_pipeline.config import SourceConfig
from deepaug_pipeline.data import ImageSource, LabelledImages
from deepaug_pipeline.errors import UserError

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
KERAS_CLASS_NAMES = {
    "cifar10": CIFAR10_CLASSES,
    "fashion_mnist": FASHION_MNIST_CLASSES,
    "mnist": [str(i) for i in range(10)],
    "cifar100": None,
}
log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class DataSourceError(UserError, ValueError):
    """A data source is missing, unreadable or malformed; the message names the file."""


# --------------------------------------------------------------------------- IDX
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4")}


def read_idx(path: Path) -> np.ndarray:
    """Read one (optionally gzipped) IDX file into an array, checking its header."""
    if not path.is_file():
        raise DataSourceError(f"missing file: {path}")
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:  # zlib.error: a damaged deflate stream
        raise DataSourceError(f"corrupt archive {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataSourceError(f"corrupt IDX file {path}: bad magic number {raw[:4]!r}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataSourceError(f"corrupt IDX file {path}: truncated header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataSourceError(
            f"corrupt IDX file {path}: header says shape {shape} ({expected} bytes), found {len(raw) - header} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _idx_file(folder: Path, name: str) -> Path:
    """``name`` in ``folder``, gzipped as distributed or already unpacked (the name without ``.gz``)."""
    unpacked = folder / name.removesuffix(".gz")
    return unpacked if not (folder / name).exists() and unpacked.is_file() else folder / name


def load_idx(folder: Path) -> tuple[LabelledImages, LabelledImages]:
    """Load the four MNIST-format files from ``folder`` (gzipped or not)."""
    if not folder.is_dir():
        raise DataSourceError(f"missing folder for idx source: {folder}")
    splits = [LabelledImages(read_idx(_idx_file(folder, xs)), read_idx(_idx_file(folder, ys))) for xs, ys in IDX_FILES.values()]
    return splits[0], splits[1]


# --------------------------------------------------------------------------- npz
def load_npz(path: Path) -> tuple[LabelledImages, LabelledImages | None]:
    """Load arrays ``x``, ``y`` (and optionally ``x_test``, ``y_test``) without pickle."""
    if path.is_dir():
        raise DataSourceError(f"source npz: {path} is a folder; path names one .npz file (a folder of IDX files is "
                              "source: idx, one of class folders source: image_folder)")  # fmt: skip
    if not path.is_file():
        raise DataSourceError(f"missing file: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataSourceError(
                f"{path} is a single .npy array {getattr(loaded, 'shape', '')}, not an npz archive of named arrays: "
                "save it with np.savez(path, x=images, y=labels)"
            )
        with loaded as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DataSourceError):
            raise
        raise DataSourceError(f"corrupt or unreadable npz file {path}: {exc}") from exc
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataSourceError(f"npz file {path} lacks array(s) {missing}; it has {sorted(arrays)}")
    test = None
    if "x_test" in arrays or "y_test" in arrays:
        if not ("x_test" in arrays and "y_test" in arrays):
            raise DataSourceError(f"npz file {path}: 'x_test' and 'y_test' must come together")
        test = LabelledImages(arrays["x_test"], arrays["y_test"])
    return LabelledImages(arrays["x"], arrays["y"]), test


# --------------------------------------------------------------------------- image folder
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")  # how Pillow opens 16-bit grayscale PNG and TIFF files
FLOAT_MODE = "F"  # how Pillow opens 32-bit float grayscale TIFF files
RAW_VALUE_MODES = (*SIXTEEN_BIT_MODES, FLOAT_MODE)


def _raw_value_array(img, image_size: tuple[int, int] | None, color_mode: str | None) -> np.ndarray:
    """A 16-bit or float grayscale image as its raw values, uint16 or float32 (Pillow's convert("L") would clip
    everything above 255 to white, and every float below 1 to black); ingest's pixel rule then reads them: floats in
    0-1 as they are, anything else by ingest.value_range (0-65535, or 0-4095 for 12-bit data in 16-bit files)."""
    from PIL import Image

    img = img.convert(FLOAT_MODE if img.mode == FLOAT_MODE else "I")
    if image_size is not None:
        img = img.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
    if img.mode == FLOAT_MODE:
        values = np.asarray(img, dtype=np.float32)[..., None]
    else:
        values = np.asarray(img, dtype=np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise DataSourceError(f"pixel values [{values.min()}, {values.max()}] do not fit 16 bits")
        values = values.astype(np.uint16)[..., None]
    return np.repeat(values, 3, axis=-1) if color_mode == "rgb" else values


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


LAYOUT = "<root>/<class>/<image>, or <root>/train/<class>/<image> with <root>/test/<class>/<image>"


def _class_images(folder: Path) -> list[Path]:
    """The image files of one class folder. A class with none is refused, saying what the folder holds instead;
    files and sub-folders that are not read are named in a warning."""
    entries = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
    files = [p for p in entries if p.is_file()]
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    others = sorted({p.suffix.lower() or p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES})
    subfolders = [p.name for p in entries if p.is_dir()]
    if not images:
        holds = (f"sub-folders ({', '.join(subfolders[:5])}) but no image files: the layout is {LAYOUT}" if subfolders else
                 f"files of type {', '.join(others)} only, which are not read as images" if others else
                 "no files: remove it or add images")  # fmt: skip
        raise DataSourceError(f"class folder {folder} holds {holds}; images are {', '.join(sorted(IMAGE_SUFFIXES))}")
    if others or subfolders:
        log.warning("%s: skipped %s%s%s (images are read from the class folder itself, by suffix)", folder,
                    f"files of type {', '.join(others)}" if others else "", " and " if others and subfolders else "",
                    f"sub-folders {', '.join(subfolders[:5])}" if subfolders else "")  # fmt: skip
    return images


def _read_image_folder(
    root: Path, class_names: list[str], image_size: tuple[int, int] | None, color_mode: str | None
) -> LabelledImages:
    from PIL import Image, UnidentifiedImageError

    images, labels = [], []
    depths: dict[int, Path] = {}  # bits per value → the first file of that depth
    shapes: dict[tuple[int, ...], Path] = {}  # image shape → the first file of that shape
    for label, name in enumerate(class_names):
        folder = root / name
        for file in _class_images(folder) if folder.is_dir() else []:
            try:
                with Image.open(file) as img:
                    if img.mode in RAW_VALUE_MODES:
                        arr = _raw_value_array(img, image_size, color_mode)
                    else:
                        mode = {"grayscale": "L", "rgb": "RGB"}.get(color_mode or "", "L" if img.mode in ("L", "1") else "RGB")
                        img = img.convert(mode)
                        if image_size is not None:
                            img = img.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
                        arr = np.asarray(img, dtype=np.uint8)
            except DataSourceError as exc:
                raise DataSourceError(f"{file}: {exc}") from exc
            except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
                raise DataSourceError(f"corrupt or unreadable image file {file}: {exc}") from exc
            depths.setdefault(arr.dtype.str, file)
            if len(depths) > 1:  # one value_range must fit every file
                (a, first), (b, odd) = depths.items()
                raise DataSourceError(f"image folder {root} mixes pixel types: {first} holds {np.dtype(a).name}, {odd} "
                                      f"{np.dtype(b).name}; convert the files to one depth")  # fmt: skip
            image = arr if arr.ndim == 3 else arr[..., None]
            shapes.setdefault(image.shape, file)
            if len(shapes) > 1:  # refused at the first odd file, not after reading every image
                (a, first), (b, odd) = shapes.items()
                raise DataSourceError(
                    f"images under {root} have different shapes: {first} is {a}, {odd} is {b}; set 'image_size' (and "
                    "'color_mode') on the catalog entry to resize them"
                )
            images.append(image)
            labels.append(label)
    if not images:  # a test/ folder without class folders of its own
        raise DataSourceError(f"image folder {root} holds no class folders with images: the layout is {LAYOUT}")
    return LabelledImages(np.stack(images), np.asarray(labels, dtype=np.int64))


def load_image_folder(
    root: Path, image_size: tuple[int, int] | None, color_mode: str | None, class_names: list[str] | None = None
) -> tuple[LabelledImages, LabelledImages | None, list[str]]:
    """Load ``root/<class>/*.png`` (or ``root/train/<class>`` and ``root/test/<class>``); ``class_names``, if
    given, must be the class folders' names as they sort."""
    if not root.is_dir():
        raise DataSourceError(f"missing folder for image_folder source: {root}")
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    train_root = root / "train" if has_splits else root
    folder_names = [p.name for p in _class_folders(train_root)]
    if not folder_names:
        raise DataSourceError(f"image folder {train_root} has no class sub-folders")
    if class_names is not None and class_names != folder_names:  # labels follow the folders, in sorted order
        raise DataSourceError(
            f"class_names {class_names} on the catalog entry do not match the class folders under {train_root}, "
            f"{folder_names} (each image's label is its folder's place in that sorted list, so other names would "
            "name the wrong images): leave class_names out, or list the folder names in that order"
        )
    class_names = folder_names
    if has_splits:
        unknown = sorted({p.name for p in _class_folders(root / "test")} - set(class_names))
        if unknown:
            raise DataSourceError(f"{root / 'test'} has class folder(s) {', '.join(unknown)} that {train_root} lacks: "
                                  "every test class needs training images")  # fmt: skip
    elif (root / "train").is_dir() or (root / "test").is_dir():
        log.warning("%s: read as one folder per class (%s), since it lacks %s/: the layout is %s", root,
                    ", ".join(class_names), "test" if (root / "train").is_dir() else "train", LAYOUT)  # fmt: skip
    train = _read_image_folder(train_root, class_names, image_size, color_mode)
    test = _read_image_folder(root / "test", class_names, image_size, color_mode) if has_splits else None
    return train, test, class_names


# --------------------------------------------------------------------------- keras.datasets
def load_keras(name: str) -> tuple[LabelledImages, LabelledImages]:
    """Load a named dataset through ``keras.datasets`` (downloads on first use)."""
    import keras

    loader = getattr(keras.datasets, name)
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as exc:  # keras raises bare Exception on URL failures
        # Where Keras caches (it has no public getter; it falls back to /tmp/.keras when home is not writable).
        keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
        raise DataSourceError(
            f"keras.datasets.{name} could not be loaded ({exc}). It downloads on first use: this needs internet "
            f"once, or a cached copy under {keras_home}/datasets (set KERAS_HOME to move it)."
        ) from exc
    return LabelledImages(x_train, y_train), LabelledImages(x_test, y_test)


# --------------------------------------------------------------------------- dispatch
def source_path(cfg: SourceConfig, root: Path | None = None) -> Path | None:
    """The source's file or folder; a relative path resolves against ``root``."""
    path = Path(cfg.path) if cfg.path else None
    if path is not None and root is not None and not path.is_absolute():
        path = root / path
    return path


def source_fingerprint(cfg: SourceConfig, root: Path | None = None) -> str:
    """What a source would load, told without reading an image: its settings and, for a file or folder, every
    file's relative path, size and modification time (hidden ones left out, as the loaders leave them; a ``keras``
    source is named by its settings alone: Keras keeps the download it made). A file rewritten or touched changes
    it; one replaced by a copy of the same size that keeps the old time (``cp -p``, ``rsync -a``) does not. The path
    is taken resolved: links to one folder read the same files, and a link pointed at a copy reads others."""
    settings = cfg.model_dump(mode="json")
    path = source_path(cfg, root)
    if path is not None:
        settings["path"] = os.path.realpath(path)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name, stat in _visible_files(path) if path is not None else ():
        digest.update(f"{name}\0{stat.st_size if stat else -1}\0{stat.st_mtime_ns if stat else -1}\n".encode())
    return digest.hexdigest()[:16]


def _visible_files(path: Path) -> list[tuple[str, os.stat_result | None]]:
    """(relative name, stat or None when it cannot be read) of ``path`` itself if it is a file, else of every file
    under it, in name order, following links to folders once each."""
    if path.is_file():
        return [(path.name, path.stat())]
    seen, files = set(), []
    for folder, subfolders, names in os.walk(path, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree
            subfolders.clear()
            continue
        seen.add(real)
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in (n for n in names if not n.startswith(".")):
            file = Path(folder, name)
            try:
                stat = file.stat()
            except OSError:  # a broken link: the loader skips or names it
                stat = None
            files.append((file.relative_to(path).as_posix(), stat))
    return sorted(files, key=lambda item: item[0])


def load_source(cfg: SourceConfig, root: Path | None = None) -> ImageSource:
    """Load the source described by ``cfg``; relative paths resolve against ``root``. The source's fingerprint is
    taken before its files are read: a file replaced while they are read makes the next fingerprint differ."""
    fingerprint = source_fingerprint(cfg, root)
    path = source_path(cfg, root)
    class_names = cfg.class_names
    test: LabelledImages | None
    if cfg.source == "idx":
        train, test = load_idx(path)
        origin = f"idx:{path}"
    elif cfg.source == "npz":
        train, test = load_npz(path)
        origin = f"npz:{path}"
    elif cfg.source == "image_folder":
        train, test, class_names = load_image_folder(path, cfg.image_size, cfg.color_mode, class_names)
        origin = f"image_folder:{path}"
    else:
        train, test = load_keras(cfg.name)
        class_names = class_names or KERAS_CLASS_NAMES[cfg.name]
        origin = f"keras:{cfg.name}"
    return ImageSource(train=train, test=test, class_names=class_names, origin=origin, fingerprint=fingerprint)
