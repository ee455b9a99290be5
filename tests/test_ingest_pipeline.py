"""Ingest through Kedro: the pipeline with SequentialRunner, and `kedro run --env test` as a user runs it."""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from deepaug_pipeline.config import ConfigError, ProjectParams
from deepaug_pipeline.data import ImageSource, LabelledImages
from deepaug_pipeline.datasets import ImageSourceDataset, LabelledImagesDataset
from deepaug_pipeline.pipelines.ingest import create_pipeline
from deepaug_pipeline.pipelines.ingest.nodes import split_images
from tests.conftest import REPO, kedro_run, kedro_session_run, make_images, squashed_output, write_idx_folder


def test_split_images_node_validates_its_parameters():
    x, y = make_images(100, 2)
    src = ImageSource(LabelledImages(x, y), LabelledImages(x[:10], y[:10]), ["a", "b"])
    with pytest.raises(ValueError, match="unknown parameter key 'ingest.trian_set_size'"):
        split_images(src, {"trian_set_size": 10}, 0)


def test_conf_base_equals_the_typed_defaults():
    """The API, notebooks and benchmarks use the typed defaults; they must be the pipeline's conf/base values."""
    params = {}
    for path in sorted((REPO / "conf" / "base").glob("parameters*.yml")):
        params.update(yaml.safe_load(path.read_text()) or {})
    assert set(params) == set(ProjectParams.model_fields)
    assert ProjectParams(**params).model_dump() == ProjectParams().model_dump()


def test_the_final_regime_environment_trains_the_child_as_evaluate_trains_the_final_model():
    """``--env final_regime`` claims the child of the regime where the final model's gain was measured: it must stay
    evaluate's regime if evaluate's defaults move."""
    from kedro.config import OmegaConfigLoader

    from deepaug_pipeline.models.training import FitSettings
    from deepaug_pipeline.search.trial import child_fit_settings
    from deepaug_pipeline.settings import CONFIG_LOADER_ARGS

    loaded = OmegaConfigLoader(str(REPO / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": "final_regime"})["parameters"]
    params = ProjectParams(**loaded)
    child, final = params.search.child, params.evaluate
    assert params.ingest.train_set_size == final.train_size == 4000
    fields = ("model", "model_options", "epochs", "batch_size", "optimizer", "learning_rate", "schedule")
    assert {f: getattr(child, f) for f in fields} == {f: getattr(final, f) for f in fields}
    assert child_fit_settings(child, validate_last=3).momentum == final.momentum == FitSettings.momentum
    assert params.child_trains_as_final() and not ProjectParams().child_trains_as_final()
    assert not ProjectParams(**{**loaded, "ingest": {"train_set_size": 2000}}).child_trains_as_final()
    assert not ProjectParams(**{**loaded, "evaluate": {**loaded["evaluate"], "momentum": 0.5}}).child_trains_as_final()
    pretrained = {**loaded["search"], "child": {**loaded["search"]["child"], "first_train_epochs": 5}}
    assert not ProjectParams(**{**loaded, "search": pretrained}).child_trains_as_final()
    # Everything else is the default search's: only what the regime needs differs (and every seed scores the whole
    # pool, which costs little beside a fit this long).
    defaults = ProjectParams().search
    assert child.validation_sample_size >= 60000 - params.ingest.train_set_size  # at least Fashion-MNIST's pool
    kept = set(fields) | {"validation_sample_size"}
    assert child.model_dump(exclude=kept) == defaults.child.model_dump(exclude=kept)
    assert params.search.reevaluate_seeds == 5
    assert params.search.model_dump(exclude={"child", "reevaluate_seeds"}) == defaults.model_dump(exclude={"child", "reevaluate_seeds"})


def ingest_in_memory(src: ImageSource, train_set_size: int) -> DataCatalog:
    catalog = DataCatalog(
        {
            "raw_images": MemoryDataset(src),
            "params:ingest": MemoryDataset({"train_set_size": train_set_size}),
            "params:seed": MemoryDataset(7),
            **{name: MemoryDataset() for name in ("search_subset", "seed_validation_pool", "test_set", "train_set", "dataset_summary")},
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


def test_ingest_pipeline_with_sequential_runner():
    x, y = make_images(300, 3)
    src = ImageSource(LabelledImages(x, y), LabelledImages(x[:30], y[:30]), ["a", "b", "c"], origin="memory")
    catalog = ingest_in_memory(src, 60)
    subset = catalog.load("search_subset")
    assert subset.x.shape == (60, 12, 12, 1) and np.bincount(subset.y).tolist() == [20, 20, 20]
    assert len(catalog.load("seed_validation_pool")) == 240
    summary = catalog.load("dataset_summary")
    assert summary["class_counts"]["search_subset"] == {"a": 20, "b": 20, "c": 20}


def test_the_final_models_images_do_not_depend_on_the_search_subset():
    """Evaluate draws from TRAIN as the source holds it: a search subset of another size (``--env final_regime``)
    leaves the images of every final model as they were."""
    x, y = make_images(300, 3)
    src = ImageSource(LabelledImages(x, y), LabelledImages(x[:30], y[:30]), ["a", "b", "c"], origin="memory")
    for size in (60, 120):
        train = ingest_in_memory(src, size).load("train_set")
        assert np.array_equal(train.x, x) and np.array_equal(train.y, y)
    from deepaug_pipeline.pipelines.evaluate import create_pipeline as evaluate_pipeline

    assert {"train_set", "test_set"} <= evaluate_pipeline().inputs()
    assert not {"search_subset", "seed_validation_pool"} & evaluate_pipeline().inputs()


def test_kedro_run_env_test_writes_the_splits(project):
    kedro_session_run(project, "search", to_nodes=["split_images"])
    out = project / "data" / "05_model_input"
    subset = LabelledImagesDataset(str(out / "search_subset.npz")).load()
    pool = LabelledImagesDataset(str(out / "seed_validation_pool.npz")).load()
    test = LabelledImagesDataset(str(out / "test_set.npz")).load()
    assert subset.x.shape == (200, 28, 28, 1) and subset.x.dtype == np.uint8
    assert np.bincount(subset.y).tolist() == [20] * 10  # stratified: Fashion-MNIST is balanced
    assert len(pool) == 60000 - 200 and np.bincount(pool.y).tolist() == [5980] * 10
    assert len(test) == 10000 and np.bincount(test.y).tolist() == [1000] * 10
    train = LabelledImagesDataset(str(out / "train_set.npz")).load()
    assert len(train) == 60000 and np.bincount(train.y).tolist() == [6000] * 10
    summary = json.loads((out / "dataset_summary.json").read_text())
    assert summary["sizes"] == {"search_subset": 200, "seed_validation_pool": 59800, "test": 10000}
    assert summary["class_names"][9] == "Ankle boot"


def test_the_source_fingerprint_follows_the_files_and_settings_not_a_read(tmp_path):
    from deepaug_pipeline.config import SourceConfig
    from deepaug_pipeline.ingest.sources import load_source, source_fingerprint

    folder = write_idx_folder(tmp_path / "raw")
    cfg = SourceConfig(source="idx", path=str(folder))
    first = source_fingerprint(cfg)
    assert load_source(cfg).fingerprint == first and source_fingerprint(cfg) == first  # reading changes nothing
    labels = folder / "train-labels-idx1-ubyte.gz"
    stat = labels.stat()
    os.utime(labels, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # rewritten with the same size
    assert source_fingerprint(cfg) != first
    os.utime(labels, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert source_fingerprint(cfg) == first
    (folder / "notes.txt").write_text("a file more")
    assert source_fingerprint(cfg) != first
    (folder / "notes.txt").unlink()
    (folder / ".DS_Store").write_text("hidden: the loaders leave it out, and so does the fingerprint")
    (folder / "loop").symlink_to(folder)  # a link back up the tree: its files are those already counted
    assert source_fingerprint(cfg) == first
    (folder / "loop").unlink()
    (folder / "dangling").symlink_to(tmp_path / "gone")
    assert source_fingerprint(cfg) != first  # named, not raised on
    (folder / "dangling").unlink()
    assert source_fingerprint(SourceConfig(source="idx", path=str(folder), class_names=list("abcd"))) != first
    # A link names the folder it points at (as each test project links the embedded data), not a place of its own;
    # a link pointed at a copy whose files keep their names, sizes and times names the copy.
    link = tmp_path / "project" / "raw"
    link.parent.mkdir()
    link.symlink_to(folder)
    assert source_fingerprint(SourceConfig(source="idx", path=str(link))) == first
    link.unlink()
    link.symlink_to(shutil.copytree(folder, tmp_path / "copy"))
    assert source_fingerprint(SourceConfig(source="idx", path=str(link))) != first
    assert source_fingerprint(SourceConfig(source="idx", path="raw"), root=tmp_path / "project") != first
    keras = SourceConfig(source="keras", name="mnist")
    assert source_fingerprint(keras) == source_fingerprint(SourceConfig(source="keras", name="mnist")) != source_fingerprint(SourceConfig(source="keras", name="cifar10"))


def test_splits_are_current_only_for_the_same_source_settings_and_seed():
    from deepaug_pipeline.config import IngestConfig
    from deepaug_pipeline.ingest.split import split_dataset, splits_are_current

    x, y = make_images(300, 3)
    source = ImageSource(LabelledImages(x, y), None, ["a", "b", "c"], fingerprint="f1")
    summary = split_dataset(source, IngestConfig(train_set_size=100), 42).summary()
    assert summary["source_fingerprint"] == "f1"
    assert splits_are_current(summary, IngestConfig(train_set_size=100), 42, "f1")
    assert not splits_are_current(summary, IngestConfig(train_set_size=100), 42, "f2")  # the files changed
    assert not splits_are_current(summary, IngestConfig(train_set_size=100), 7, "f1")
    assert not splits_are_current(summary, IngestConfig(train_set_size=90), 42, "f1")
    assert not splits_are_current(summary, IngestConfig(train_set_size=100, test_fraction=0.3), 42, "f1")
    assert not splits_are_current(summary, IngestConfig(train_set_size=100, value_range=[0, 1]), 42, "f1")
    assert not splits_are_current({**summary, "source_fingerprint": ""}, IngestConfig(train_set_size=100), 42, "")
    assert not splits_are_current({k: v for k, v in summary.items() if k != "source_fingerprint"}, IngestConfig(train_set_size=100), 42, "f1")
    assert not splits_are_current("", IngestConfig(train_set_size=100), 42, "f1")  # an unreadable summary
    assert not splits_are_current({**summary, "splits_format": 0}, IngestConfig(train_set_size=100), 42, "f1")  # older code
    # A source with its own test split never reads test_fraction: changing it leaves the splits current.
    own = ImageSource(LabelledImages(x, y), LabelledImages(x[:30], y[:30]), ["a", "b", "c"], fingerprint="f1")
    own_summary = split_dataset(own, IngestConfig(train_set_size=100), 42).summary()
    assert splits_are_current(own_summary, IngestConfig(train_set_size=100, test_fraction=0.3), 42, "f1")


def test_a_run_reuses_the_splits_ingest_would_make_again(project):
    """The same source files, ingest settings and seed: ingest is left out and nothing is rewritten. Any of them
    changed, a split newer than the summary (a run stopped halfway), or Kedro's own runner asked for: ingest runs."""
    import logging
    import logging.handlers

    folder = write_idx_folder(project / "data" / "01_raw" / "small", n_train=200)
    (project / "conf" / "test" / "catalog.yml").write_text(  # the environment kedro_session_run runs in
        "raw_images:\n  type: deepaug_pipeline.datasets.ImageSourceDataset\n  source: idx\n  path: data/01_raw/small\n"
    )
    out = project / "data" / "05_model_input"
    splits = ("search_subset.npz", "seed_validation_pool.npz", "test_set.npz", "train_set.npz")
    said = logging.handlers.BufferingHandler(100)  # Kedro's session reconfigures logging, and with it caplog's handler

    def ingest(train_set_size: int = 60, **run_args) -> dict[str, tuple[int, int]]:
        """Each split file's (inode, mtime) after a run: a split is written to a new file and renamed over the old."""
        said.flush()
        runner_log = logging.getLogger("deepaug_pipeline.runner")
        runner_log.addHandler(said)
        try:
            kedro_session_run(project, "search", params={"ingest": {"train_set_size": train_set_size}}, to_nodes=["split_images"], **run_args)
        finally:
            runner_log.removeHandler(said)
        return {name: ((out / name).stat().st_ino, (out / name).stat().st_mtime_ns) for name in (*splits, "dataset_summary.json")}

    def left_out() -> bool:
        return any("Ingest left out" in r.getMessage() and str(out / "dataset_summary.json") in r.getMessage() for r in said.buffer)

    def rewritten(after: dict, before: dict) -> bool:
        return all(after[name][0] != before[name][0] for name in splits) and not left_out()

    written = ingest()
    assert not left_out()
    assert ingest() == written and left_out()
    resized = ingest(80)
    assert rewritten(resized, written)
    assert json.loads((out / "dataset_summary.json").read_text())["sizes"]["search_subset"] == 80
    assert ingest(80) == resized and left_out()
    labels = folder / "train-labels-idx1-ubyte.gz"
    os.utime(labels, ns=(labels.stat().st_atime_ns, labels.stat().st_mtime_ns + 1_000_000_000))
    touched = ingest(80)
    assert rewritten(touched, resized)
    subset = out / "search_subset.npz"
    os.utime(subset, ns=(subset.stat().st_atime_ns, (out / "dataset_summary.json").stat().st_mtime_ns + 1_000_000_000))
    assert rewritten(restored := ingest(80), touched)  # a subset written after the summary: not the summary's
    assert rewritten(ingest(80, runner=SequentialRunner()), restored)


def test_bad_parameter_fails_before_any_node_and_keeps_data(project):
    out = project / "data" / "05_model_input"
    out.mkdir(parents=True)
    (out / "search_subset.npz").write_bytes(b"previous result")
    (project / "conf" / "local" / "parameters_ingest.yml").write_text("ingest:\n  train_set_sise: 100\n")
    result = kedro_run(project, "--pipelines=search")
    assert result.returncode != 0
    assert "unknownparameterkey'parameters.ingest.train_set_sise'" in squashed_output(result)
    assert (out / "search_subset.npz").read_bytes() == b"previous result"


def test_corrupt_raw_data_fails_with_the_file_named(project):
    raw = write_idx_folder(project / "data" / "01_raw" / "broken")
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    (project / "conf" / "local" / "catalog.yml").write_text(
        "raw_images:\n  type: deepaug_pipeline.datasets.ImageSourceDataset\n  source: idx\n  path: data/01_raw/broken\n"
    )
    result = kedro_run(project, "--pipelines=search")
    assert result.returncode != 0
    assert "corruptarchive" + str(project) + "/data/01_raw/broken/train-labels-idx1-ubyte.gz" in squashed_output(result)
    assert not (project / "data" / "05_model_input" / "search_subset.npz").exists()


def test_a_missing_source_path_is_named_before_any_node(tmp_path):
    from kedro.io import DataCatalog
    from kedro.pipeline import node, pipeline

    from deepaug_pipeline.config import ConfigError
    from deepaug_pipeline.datasets import ImageSourceDataset
    from deepaug_pipeline.hooks import ConfigValidationHook

    missing = tmp_path / "nowhere"
    catalog = DataCatalog({"raw_images": ImageSourceDataset(source="idx", path=str(missing))})
    with pytest.raises(ConfigError, match=rf"missing pipeline inputs: raw_images \({re.escape(str(missing))}\)"):
        ConfigValidationHook().before_pipeline_run({}, pipeline([node(len, "raw_images", "n")]), catalog)


def test_ingest_is_refused_before_it_replaces_the_splits_a_search_log_was_made_on(tmp_path):
    """Changed ingest settings would rewrite the splits, and the search would then refuse its log: refused first."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import node, pipeline
    from kedro_datasets.json import JSONDataset

    from deepaug_pipeline.config import IngestConfig, SearchConfig, canonical_search_config
    from deepaug_pipeline.datasets import ImageSourceDataset, TrialLogStoreDataset
    from deepaug_pipeline.hooks import ConfigValidationHook
    from deepaug_pipeline.ingest import split_dataset, validate_source
    from deepaug_pipeline.run_log import TrialLog, TrialLogMismatch
    from tests.conftest import make_images

    x, y = make_images(300, 3)
    source = validate_source(ImageSource(LabelledImages(x, y), None, ["a", "b", "c"]))
    splits = split_dataset(source, IngestConfig(train_set_size=100), 42)
    summary = JSONDataset(filepath=str(tmp_path / "dataset_summary.json"))
    summary.save(splits.summary())
    logs = TrialLogStoreDataset(path=str(tmp_path / "logs"))
    logged = canonical_search_config({"seed": 42, "search": SearchConfig().model_dump(), "data": {"content": splits.summary()["content"]}})
    with TrialLog(logs.load().path_for("bayesian"), logged) as log:
        log.append({"key": "baseline/none/s0"})
    flow = pipeline([node(lambda raw: {}, "raw_images", "dataset_summary", name="split_images"),
                     node(lambda *a: 0, ["dataset_summary", "trial_logs", "parameters"], "trials", name="search_policies")])  # fmt: skip

    def check(params: dict) -> None:
        catalog = DataCatalog({"raw_images": ImageSourceDataset(source="idx", path=str(tmp_path)), "trial_logs": logs,
                               "dataset_summary": summary, "parameters": MemoryDataset(params)})  # fmt: skip
        ConfigValidationHook().before_pipeline_run({}, flow, catalog)

    check({"seed": 42, "ingest": {"train_set_size": 100}})  # unchanged: ingest makes the same splits again
    assert splits.summary()["made_from"] == {"seed": 42, "ingest.train_set_size": 100, "ingest.test_fraction": 0.2, "ingest.value_range": None}
    with pytest.raises(TrialLogMismatch, match=r"ingest would replace the splits the log .*bayesian.jsonl was made on: their "
                                               r"settings changed since \(ingest.train_set_size: 100 → 50\)\. No step was run"):  # fmt: skip
        check({"seed": 42, "ingest": {"train_set_size": 50}})
    check({"seed": 42, "ingest": {"train_set_size": 50}, "search": {"fresh_start": True}})  # asked for: a new search
    summary.save({**splits.summary(), "content": "other"})  # the splits on disk are not the log's: ingest may restore them
    check({"seed": 42, "ingest": {"train_set_size": 50}})
    (tmp_path / "dataset_summary.json").write_text("")  # unreadable: ingest rewrites it, the search checks its data
    check({"seed": 42, "ingest": {"train_set_size": 50}})
    # A source with a test split of its own never reads test_fraction: changing it changes nothing.
    own = split_dataset(ImageSource(LabelledImages(x, y), LabelledImages(x[:30], y[:30]), ["a", "b", "c"]), IngestConfig(train_set_size=100), 42)
    assert "ingest.test_fraction" not in own.summary()["made_from"]
    summary.save({**own.summary(), "content": splits.summary()["content"]})
    check({"seed": 42, "ingest": {"train_set_size": 100, "test_fraction": 0.3}})


def test_api_names_missing_labels():
    from deepaug_pipeline import DeepAugment
    from deepaug_pipeline.ingest import DataValidationError

    with pytest.raises(DataValidationError, match=r"DeepAugment: labels is None; pass arrays"):
        DeepAugment(np.zeros((10, 12, 12), np.uint8), None)


@pytest.mark.parametrize("arguments, problem", [
    ({"source": "npz"}, r"bad value for 'catalog raw_images': source 'npz' needs 'path'"),
    ({"source": "idx", "path": "data/01_raw/x", "clas_names": ["a"]}, r"unknown catalog.yml argument 'catalog raw_images.clas_names'"),
])  # fmt: skip
def test_a_wrong_raw_images_entry_is_printed_as_a_config_error(arguments, problem):
    from kedro.io import DatasetError

    from deepaug_pipeline.cli import user_error

    with pytest.raises(DatasetError) as raised:
        ImageSourceDataset(**arguments)
    assert isinstance(user_error(raised.value), ConfigError)  # one line on the command line, not a traceback
    assert re.search(problem, str(user_error(raised.value)))
