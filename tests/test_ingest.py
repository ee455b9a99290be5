"""Ingest library: every source type, every bad-input case, the splits."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from PIL import Image

from deepaug_pipeline.config import ConfigError, IngestConfig, SourceConfig, parse_config, validate_params
from deepaug_pipeline.data import ImageSource, LabelledImages
from deepaug_pipeline.ingest import (
    DataSourceError,
    DataValidationError,
    load_source,
    split_dataset,
    validate_source,
)
from deepaug_pipeline.ingest.sources import read_idx
from tests.conftest import RAW_FASHION, make_images, write_idx_folder


def _source(x, y, test=None, class_names=None) -> ImageSource:
    return ImageSource(LabelledImages(x, y), test, class_names, origin="test")


# --------------------------------------------------------------------------- sources
def test_embedded_fashion_mnist_loads_as_uint8_nhwc():
    src = validate_source(load_source(SourceConfig(source="idx", path=str(RAW_FASHION))))
    assert src.train.x.shape == (60000, 28, 28, 1) and src.train.x.dtype == np.uint8
    assert src.test.x.shape == (10000, 28, 28, 1)
    assert np.bincount(src.train.y).tolist() == [6000] * 10
    assert np.bincount(src.test.y).tolist() == [1000] * 10


def test_idx_missing_file_names_it(tmp_path):
    folder = write_idx_folder(tmp_path / "d")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataSourceError, match=r"missing file: .*t10k-labels-idx1-ubyte\.gz"):
        load_source(SourceConfig(source="idx", path=str(folder)))


def test_idx_files_unpacked_from_their_gzip_load_too(tmp_path):
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name.removesuffix(".gz")).write_bytes(gzip.decompress((RAW_FASHION / name).read_bytes()))
    unpacked = load_source(SourceConfig(source="idx", path=str(tmp_path)))
    packed = load_source(SourceConfig(source="idx", path=str(RAW_FASHION)))
    assert np.array_equal(unpacked.train.x, packed.train.x) and np.array_equal(unpacked.test.y, packed.test.y)


def test_idx_corrupt_archive_names_it(tmp_path):
    folder = write_idx_folder(tmp_path / "d")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataSourceError, match=r"corrupt archive .*train-images-idx3-ubyte\.gz"):
        load_source(SourceConfig(source="idx", path=str(folder)))


def test_idx_truncated_payload_is_reported(tmp_path):
    folder = write_idx_folder(tmp_path / "d")
    path = folder / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DataSourceError, match=r"corrupt IDX file .*train-images.*header says shape"):
        load_source(SourceConfig(source="idx", path=str(folder)))


def test_npz_round_trip_with_and_without_test(tmp_path):
    x, y = make_images(60, 3, (10, 9), channels=3)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    src = load_source(SourceConfig(source="npz", path=str(tmp_path / "a.npz")))
    assert src.test is None and np.array_equal(src.train.x, x) and np.array_equal(src.train.y, y)
    np.savez(tmp_path / "b.npz", x=x, y=y, x_test=x[:6], y_test=y[:6])
    src = load_source(SourceConfig(source="npz", path=str(tmp_path / "b.npz")))
    assert src.test.x.shape == (6, 10, 9, 3)


def test_npz_refuses_pickled_objects(tmp_path):
    np.savez(tmp_path / "p.npz", x=np.array([object()], dtype=object), y=np.array([0]))
    with pytest.raises(DataSourceError, match=r"corrupt or unreadable npz file .*p\.npz.*allow_pickle"):
        load_source(SourceConfig(source="npz", path=str(tmp_path / "p.npz")))


def test_npz_missing_arrays_named(tmp_path):
    np.savez(tmp_path / "c.npz", images=np.zeros((4, 8, 8)))
    with pytest.raises(DataSourceError, match=r"lacks array\(s\) \['x', 'y'\]"):
        load_source(SourceConfig(source="npz", path=str(tmp_path / "c.npz")))


def test_npz_path_naming_a_folder_says_so(tmp_path):
    with pytest.raises(DataSourceError, match=r"source npz: .* is a folder; path names one .npz file \(a folder of IDX files is source: idx"):
        load_source(SourceConfig(source="npz", path=str(tmp_path)))


def test_image_folder_one_subfolder_per_class(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (9, 11, 3), dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    src = validate_source(load_source(SourceConfig(source="image_folder", path=str(tmp_path / "imgs"))))
    assert src.class_names == ["cat", "dog"]
    assert src.train.x.shape == (6, 9, 11, 3) and src.train.y.tolist() == [0, 0, 0, 1, 1, 1]
    # Names from the catalog must be the folders' own, in their order: other ones would name the wrong images.
    assert load_source(SourceConfig(source="image_folder", path=str(tmp_path / "imgs"), class_names=["cat", "dog"])).class_names == ["cat", "dog"]
    with pytest.raises(DataSourceError, match=r"class_names \['dog', 'cat'\] .* do not match the class folders .*\['cat', 'dog'\]"):
        load_source(SourceConfig(source="image_folder", path=str(tmp_path / "imgs"), class_names=["dog", "cat"]))


def test_image_folder_refuses_a_class_without_images_saying_what_it_holds(tmp_path, caplog):
    def image(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((9, 9), np.uint8)).save(path)

    def load(root):
        return load_source(SourceConfig(source="image_folder", path=str(root)))

    for split in ("train", "val"):  # a train/val layout has no test/: its two folders would be two classes
        for cls in ("cat", "dog"):
            image(tmp_path / "a" / split / cls / "0.png")
    with pytest.raises(DataSourceError, match=r"class folder .*/a/train holds sub-folders \(cat, dog\) but no image files: "
                                              r"the layout is <root>/<class>/<image>, or <root>/train/<class>/<image> with"):
        load(tmp_path / "a")
    assert "read as one folder per class (train, val), since it lacks test/" in caplog.text
    for cls in ("cat", "dog"):
        image(tmp_path / "b" / cls / "0.png")
    (tmp_path / "b" / "bird").mkdir()
    with pytest.raises(DataSourceError, match=r"class folder .*/b/bird holds no files: remove it or add images"):
        load(tmp_path / "b")
    (tmp_path / "b" / "bird" / "0.ppm").write_bytes(b"P5 9 9 255\n" + bytes(81))  # Pillow reads it; its suffix is not read
    with pytest.raises(DataSourceError, match=r"class folder .*/b/bird holds files of type \.ppm only, which are not read"):
        load(tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "bird")
    image(tmp_path / "b" / "dog" / "more" / "1.png")
    (tmp_path / "b" / "dog" / "notes.txt").write_text("labels checked")
    caplog.clear()
    assert np.bincount(load(tmp_path / "b").train.y).tolist() == [1, 1]
    assert "/b/dog: skipped files of type .txt and sub-folders more" in caplog.text
    for cls in ("cat", "dog"):
        image(tmp_path / "c" / "train" / cls / "0.png")
        image(tmp_path / "c" / "test" / cls / "0.png")
    image(tmp_path / "c" / "test" / "bird" / "0.png")
    with pytest.raises(DataSourceError, match=r"/c/test has class folder\(s\) bird that .*/c/train lacks"):
        load(tmp_path / "c")
    shutil.rmtree(tmp_path / "c" / "test")
    image(tmp_path / "c" / "test" / "loose.png")  # test/ without class folders
    with pytest.raises(DataSourceError, match=r"image folder .*/c/test holds no class folders with images"):
        load(tmp_path / "c")


def test_image_size_below_the_minimum_is_refused_by_the_config():
    with pytest.raises(ConfigError, match=r"'raw_images\.image_size\[0\]': Input should be greater than or equal to 8 \(got 0\)"):
        parse_config(SourceConfig, {"source": "image_folder", "path": "x", "image_size": [0, 16]}, "raw_images")


def test_image_folder_mixed_sizes_needs_image_size(tmp_path):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "b").mkdir(parents=True)
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "imgs" / "a" / "0.png")
    Image.fromarray(np.zeros((12, 10), np.uint8)).save(tmp_path / "imgs" / "b" / "0.png")
    with pytest.raises(DataSourceError, match=r"different shapes: .*/a/0\.png is \(9, 9, 1\), .*/b/0\.png is \(12, 10, 1\); set .image_size."):
        load_source(SourceConfig(source="image_folder", path=str(tmp_path / "imgs")))
    resized = load_source(
        SourceConfig(source="image_folder", path=str(tmp_path / "imgs"), image_size=(16, 16), color_mode="grayscale")
    )
    assert resized.train.x.shape == (2, 16, 16, 1)


def test_image_folder_corrupt_image_named(tmp_path):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataSourceError, match=r"corrupt or unreadable image file .*broken\.png"):
        load_source(SourceConfig(source="image_folder", path=str(tmp_path / "imgs")))


def test_keras_fashion_mnist_from_local_cache(tmp_path, monkeypatch):
    """The real keras.datasets loader, reading a tiny cache in its on-disk format (no download)."""
    from keras.src.backend import config as keras_config  # Keras reads KERAS_HOME once, at import: no public setter

    write_idx_folder(tmp_path / "datasets" / "fashion-mnist", n_train=50, n_test=20, n_classes=10, size=(28, 28))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))
    src = validate_source(load_source(SourceConfig(source="keras", name="fashion_mnist")))
    assert src.train.x.shape == (50, 28, 28, 1) and src.test.x.shape == (20, 28, 28, 1)
    assert src.class_names[0] == "T-shirt/top" and len(src.class_names) == 10


# --------------------------------------------------------------------------- validation: every bad input
@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.zeros((10, 12, 12), np.uint8), np.zeros(9, np.int64), r"10 images but 9 labels \(x/y length mismatch\)"),
        (np.zeros((10, 12, 12), np.uint8), np.linspace(0, 1, 10), r"labels must be integers, got dtype float64"),
        (np.zeros((10, 12), np.uint8), np.arange(10) % 2, r"rank 3 \(N, H, W\) or 4 \(N, H, W, C\), got rank 2"),
        (np.zeros((10, 12, 12, 2), np.uint8), np.arange(10) % 2, r"1 or 3 channels .*got shape \(10, 12, 12, 2\)"),
        (np.zeros((10, 7, 12), np.uint8), np.arange(10) % 2, r"images are 7x12; at least 8x8"),
        (np.full((10, 12, 12), np.nan, np.float32), np.arange(10) % 2, r"1440 non-finite pixel value\(s\)"),
        (np.full((10, 12, 12), 300.0), np.arange(10) % 2, r"float pixel values reach 300, beyond \[0, 1\].*ingest.value_range"),
        (np.zeros((10, 12, 12), np.uint8), np.zeros(10, np.int64), r"has 1 class\(es\); at least 2"),
        (np.zeros((10, 12, 12), np.uint8), np.eye(10, dtype=np.int64)[:, :4], r"shape \(N,\), got shape \(10, 4\)"),
        (np.zeros((10, 12, 12), np.uint8), np.array(3), r"labels must be an array of class ids .* got a single value"),
    ],
)
def test_bad_arrays_are_rejected_with_a_named_problem(x, y, message):
    with pytest.raises(DataValidationError, match=message):
        validate_source(_source(x, y))


def test_labels_out_of_range_for_the_class_names():
    x, y = make_images(20, 4)
    with pytest.raises(DataValidationError, match=r"labels must be class ids 0\.\.2 \(3 class names\), found range \[0, 3\]"):
        validate_source(_source(x, y, class_names=["a", "b", "c"]))
    with pytest.raises(DataValidationError, match=r"0\.\.3 \(no class names, so the largest label sets the count\), found range \[-1, 3\]"):
        validate_source(_source(x, np.where(y == 0, -1, y)))
    # A named class with no training image (an npz whose class_names list more than its labels) is refused by name.
    with pytest.raises(DataValidationError, match=r"class\(es\) 'e' have no training image; remove them from class_names"):
        validate_source(_source(x, y, class_names=["a", "b", "c", "d", "e"]))


def test_float_images_in_unit_range_become_uint8():
    x = np.linspace(0, 1, 20 * 8 * 8, dtype=np.float32).reshape(20, 8, 8)
    out = validate_source(_source(x, np.arange(20) % 2))
    assert out.train.x.dtype == np.uint8 and out.train.x.shape == (20, 8, 8, 1)
    assert out.train.x.max() == 255 and out.train.x.min() == 0


# --------------------------------------------------------------------------- pixel values: one explicit rule
def test_floats_just_beyond_one_are_refused_not_read_as_0_255():
    x = np.random.default_rng(0).uniform(0, 1, (20, 8, 8)).astype(np.float32)
    x[3, 4, 4] = 1.02  # the case that used to be stored near-black
    with pytest.raises(DataValidationError, match=r"float pixel values reach 1.02, beyond \[0, 1\].*ingest.value_range"):
        validate_source(_source(x, np.arange(20) % 2))
    out = validate_source(_source(x, np.arange(20) % 2), value_range=(0.0, 1.02))
    assert out.train.x.max() == 255 and abs(int(out.train.x[0, 0, 0, 0]) - round(x[0, 0, 0] / 1.02 * 255)) <= 1


def test_a_stated_range_maps_onto_0_255_and_values_outside_it_are_refused():
    x = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (20, 8, 1))[:, :, :8]  # 12-bit values
    x = np.concatenate([x, np.full((20, 8, 1), 4095, np.uint16)], axis=2)[:, :, 1:]
    with pytest.raises(DataValidationError, match=r"uint16 pixel values reach 4095, beyond 0-255 \(16-bit data\?\).*value_range"):
        validate_source(_source(x, np.arange(20) % 2))
    out = validate_source(_source(x, np.arange(20) % 2), value_range=(0, 4095))
    assert out.train.x.max() == 255 and out.train.x.min() == round(64 / 4095 * 255)
    with pytest.raises(DataValidationError, match=r"1 pixel value\(s\) lie outside ingest.value_range \[0, 1\] \(found \[0.5, 2\]\)"):
        validate_source(_source(np.where(np.arange(20 * 64).reshape(20, 8, 8) == 5, 2.0, 0.5), np.arange(20) % 2), value_range=(0, 1))
    with pytest.raises(ConfigError, match=r"value_range \[1.0, 1.0\] must be \[low, high\] with low < high"):
        parse_config(IngestConfig, {"value_range": [1, 1]}, "ingest")
    with pytest.raises(ConfigError, match=r"bad value for 'ingest.value_range\[1\]': Input should be a finite number \(got inf\)"):
        parse_config(IngestConfig, {"value_range": [0, float("inf")]}, "ingest")
    # A 16-bit range left on 8-bit data would store every image near-black (255 → 1).
    with pytest.raises(DataValidationError, match=r"value_range \[0, 65535\] reaches beyond what uint8 pixels can hold \(255\)"):
        validate_source(_source(np.full((20, 8, 8), 255, np.uint8), np.arange(20) % 2), value_range=(0, 65535))


def test_class_names_repeated_or_empty_are_refused_by_the_config():
    with pytest.raises(ConfigError, match=r"class_names repeats 'shirt': each class needs its own name"):
        parse_config(SourceConfig, {"source": "npz", "path": "x.npz", "class_names": ["shirt", "shirt", "bag"]}, "catalog raw_images")
    with pytest.raises(ConfigError, match=r"class_names is empty"):
        parse_config(SourceConfig, {"source": "npz", "path": "x.npz", "class_names": []}, "catalog raw_images")


def test_sixteen_bit_pngs_are_refused_by_name_or_scaled_by_the_stated_range_never_clipped(tmp_path):
    values = np.linspace(0, 4095, 12 * 12).reshape(12, 12).astype(np.uint16)  # 12-bit data in 16-bit files
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(values).save(tmp_path / "imgs" / cls / f"{i}.png")
    assert Image.open(tmp_path / "imgs" / "a" / "0.png").mode.startswith("I")  # really stored as 16-bit
    source = load_source(SourceConfig(source="image_folder", path=str(tmp_path / "imgs")))
    with pytest.raises(DataValidationError, match=r"uint16 pixel values reach 4095, beyond 0-255.*ingest.value_range"):
        validate_source(source)
    x = validate_source(source, value_range=(0, 4095)).train.x[0, ..., 0]
    assert x.min() == 0 and x.max() == 255 and np.mean(x == 255) < 0.01  # clipping made 99.6% of pixels 255
    assert np.abs(x.astype(int) - np.round(values / 4095 * 255)).max() == 0
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(tmp_path / "imgs" / "b" / "8bit.png")
    with pytest.raises(DataSourceError, match=r"mixes pixel types: .*0\.png holds uint16, .*8bit\.png uint8"):
        load_source(SourceConfig(source="image_folder", path=str(tmp_path / "imgs")))


def test_float_tiffs_are_read_as_their_values_not_converted_to_black(tmp_path):
    """Pillow opens 32-bit float TIFFs in mode F; converting them to RGB clipped every 0-1 value to 0."""
    values = np.linspace(0, 1, 12 * 12, dtype=np.float32).reshape(12, 12)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(values).save(tmp_path / "imgs" / cls / f"{i}.tiff")
    assert Image.open(tmp_path / "imgs" / "a" / "0.tiff").mode == "F"
    x = validate_source(load_source(SourceConfig(source="image_folder", path=str(tmp_path / "imgs")))).train.x
    assert x.shape == (4, 12, 12, 1) and np.array_equal(x[0, ..., 0], np.round(values * 255).astype(np.uint8))
    Image.fromarray(values * 255).save(tmp_path / "imgs" / "b" / "0.tiff")  # 0-255 floats: the range is asked for
    with pytest.raises(DataValidationError, match=r"float pixel values reach 255, beyond \[0, 1\].*ingest.value_range"):
        validate_source(load_source(SourceConfig(source="image_folder", path=str(tmp_path / "imgs"))))


def test_a_damaged_deflate_stream_in_an_idx_archive_is_named(tmp_path):
    data = gzip.compress(bytes(range(256)) * 64)
    damaged = data[:40] + bytes(b ^ 0xFF for b in data[40:60]) + data[60:]
    (tmp_path / "t.gz").write_bytes(damaged)
    with pytest.raises(DataSourceError, match=r"corrupt archive .*t\.gz"):
        read_idx(tmp_path / "t.gz")


# --------------------------------------------------------------------------- splits
def _fashion_like(n=400, n_classes=4, seed=0):
    x, y = make_images(n, n_classes, seed=seed)
    return validate_source(_source(x, y, test=LabelledImages(x[:40], y[:40])))


def test_split_sizes_stratification_and_disjointness():
    src = _fashion_like()
    splits = split_dataset(src, IngestConfig(train_set_size=100), seed=3)
    assert len(splits.search_subset) == 100 and len(splits.seed_validation_pool) == 300
    assert np.bincount(splits.search_subset.y).tolist() == [25] * 4
    assert np.bincount(splits.seed_validation_pool.y).tolist() == [75] * 4
    assert splits.test is src.test  # the test split is untouched
    flat = lambda s: {row.tobytes() for row in s.x.reshape(len(s), -1)}  # noqa: E731
    assert not flat(splits.search_subset) & flat(splits.seed_validation_pool)
    assert splits.summary()["sizes"] == {"search_subset": 100, "seed_validation_pool": 300, "test": 40}


def test_split_is_seeded_and_reproducible():
    src = _fashion_like()
    cfg = IngestConfig(train_set_size=100)
    a, b, c = (split_dataset(src, cfg, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.search_subset.x, b.search_subset.x)
    assert not np.array_equal(a.search_subset.x, c.search_subset.x)


def test_holdout_test_split_when_the_source_has_none():
    x, y = make_images(500, 5)
    splits = split_dataset(validate_source(_source(x, y)), IngestConfig(train_set_size=100, test_fraction=0.2), 0)
    assert len(splits.test) == 100 and np.bincount(splits.test.y).tolist() == [20] * 5
    assert len(splits.search_subset) + len(splits.seed_validation_pool) == 400


def test_train_set_size_larger_than_what_exists():
    with pytest.raises(DataValidationError, match=r"ingest.train_set_size=500 is larger than what exists: .* 400 images"):
        split_dataset(_fashion_like(), IngestConfig(train_set_size=500), 0)


def test_class_with_too_few_images_for_the_stratified_split():
    x, y = make_images(300, 3)
    y[y == 2] = 0
    y[0] = 2  # class 2 has one image: it cannot be on both sides
    src = validate_source(_source(x, y, class_names=["a", "b", "rare"]))
    with pytest.raises(DataValidationError, match=r"class 'rare' \(label 2\) has 1 image\(s\): too few for a stratified "
                                                  r"test hold-out \(ingest\.test_fraction\) of 60"):
        split_dataset(src, IngestConfig(train_set_size=100, test_fraction=0.2), 0)
    # Every split and sample names the key that sets its size.
    from deepaug_pipeline.config import EvaluateConfig
    from deepaug_pipeline.evaluate.final import final_splits

    with pytest.raises(DataValidationError, match=r"stratified evaluation validation sample \(evaluate\.validation_size\) of 200"):
        final_splits(LabelledImages(x, y), ["a", "b", "rare"], EvaluateConfig(validation_size=200), 0)
    # A size beyond the images there are is said as such, not as a class short of images.
    with pytest.raises(DataValidationError, match=r"^the evaluation validation sample \(evaluate\.validation_size\) asks for 100000 "
                                                  r"images out of 300: it must leave some for the rest$"):  # fmt: skip
        final_splits(LabelledImages(x, y), ["a", "b", "rare"], EvaluateConfig(validation_size=100000), 0)
    with pytest.raises(DataValidationError, match=r"stratified evaluation training subset \(evaluate\.train_size\) of 140"):
        four_rare = np.where(np.arange(len(y)) < 4, 2, y)  # 2 go to the validation sample, 2 stay for training
        final_splits(LabelledImages(x, four_rare), ["a", "b", "rare"], EvaluateConfig(validation_size=150, train_size=140), 0)
    # A batch the final models' training set cannot fill: 300 images less 100 validation, then train_size 150.
    with pytest.raises(ConfigError, match=r"evaluate.batch_size=151 exceeds the final models' training set \(150 images, evaluate.train_size\)"):
        final_splits(LabelledImages(x, np.arange(300) % 3), ["a", "b", "c"], EvaluateConfig(validation_size=100, train_size=150, batch_size=151), 0)
    train, _ = final_splits(LabelledImages(x, np.arange(300) % 3), ["a", "b", "c"], EvaluateConfig(validation_size=100, train_size=150, batch_size=150), 0)
    assert len(train.y) == 150


# --------------------------------------------------------------------------- config
def test_unknown_parameter_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown parameter key 'ingest.train_size'"):
        parse_config(IngestConfig, {"train_size": 10}, "ingest")
    with pytest.raises(ConfigError, match=r"unknown parameter key 'parameters.sead'"):
        validate_params({"sead": 1})


def test_bad_parameter_value_is_named():
    with pytest.raises(ConfigError, match=r"bad value for 'ingest.train_set_size'.*got -5"):
        parse_config(IngestConfig, {"train_set_size": -5}, "ingest")


def test_source_config_requires_the_right_fields():
    with pytest.raises(ConfigError, match="source 'keras' needs 'name'"):
        parse_config(SourceConfig, {"source": "keras"}, "catalog raw_images")
    with pytest.raises(ConfigError, match=r"bad value for 'catalog raw_images.name'"):
        parse_config(SourceConfig, {"source": "keras", "name": "imagenet"}, "catalog raw_images")


# --------------------------------------------------------------------------- issue 14, smaller cases
def test_a_npy_file_renamed_npz_is_named_not_a_type_error(tmp_path):
    path = tmp_path / "data.npz"
    with open(path, "wb") as fh:
        np.save(fh, np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(DataSourceError, match=r"data.npz is a single .npy array \(4, 8, 8\), not an npz archive.*np.savez"):
        load_source(SourceConfig(source="npz", path=str(path)))


def test_labels_that_leave_classes_empty_without_names_are_refused_by_range():
    x, _ = make_images(50, 4, (12, 12))
    y = np.array([0, 1, 2, 3, 99] * 10)
    with pytest.raises(DataValidationError, match=r"label\(s\) 4–98 have no training image \(95 of 100\)"):
        validate_source(_source(x, y))


def test_a_class_only_in_the_test_split_or_an_empty_test_split_is_refused():
    """Without class names, a label seen only in the test split made a class the search never trains on; an empty
    test split was taken for none, and a hold-out was carved from train instead."""
    x, y = make_images(40, 3, (12, 12))
    tx, _ = make_images(10, 3, (12, 12))
    with pytest.raises(DataValidationError, match=r"label\(s\) 3 have no training image \(1 of 4\)"):
        validate_source(_source(x, y, test=LabelledImages(tx, np.full(10, 3))))
    with pytest.raises(DataValidationError, match=r"test split, test\): no images"):
        validate_source(_source(x, y, test=LabelledImages(tx[:0], np.zeros(0, np.int64))))
