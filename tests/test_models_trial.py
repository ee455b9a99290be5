"""Child models, the resettable trainer, rewards and one trial."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from deepaug_pipeline.augment.policy import Policy
from deepaug_pipeline.ingest import LabelledImages
from deepaug_pipeline.models import ModelConfigError, build_model
from deepaug_pipeline.models.training import FitSettings, History, Trainer
from deepaug_pipeline.search.reward import sample_reward, trial_reward
from deepaug_pipeline.search.trial import ChildSettings, TrialRunner
from tests.conftest import make_images


def _hist(train, val, loss=None):
    loss = loss or [1.0] * len(val)
    return History(np.array(loss), np.array(train, float), np.array(loss), np.array(val, float))


# --------------------------------------------------------------------------- reward
def test_reward_uses_the_k_best_non_overfit_epochs():
    h = _hist(train=[0.5, 0.7, 0.85, 0.95, 0.99], val=[0.45, 0.65, 0.78, 0.80, 0.70])
    r = sample_reward(h, last_n_epochs=2, overfit_gap=0.10)
    # epoch 3 (gap .15) and 4 (gap .29) overfit; the best two of epochs 0-2 are 0.65 and 0.78
    assert r.epochs_used == [1, 2] and r.reward == pytest.approx((0.65 + 0.78) / 2) and not r.fallback


def test_reward_falls_back_to_the_last_k_when_every_epoch_overfits():
    h = _hist(train=[0.9, 0.95, 0.99], val=[0.5, 0.6, 0.55])
    r = sample_reward(h, last_n_epochs=2, overfit_gap=0.10)
    assert r.fallback and r.epochs_used == [1, 2] and r.reward == pytest.approx(0.575)


def test_reward_ties_keep_the_earlier_epochs_and_k_is_capped():
    h = _hist(train=[0.6, 0.6, 0.6], val=[0.6, 0.6, 0.6])
    assert sample_reward(h, last_n_epochs=2, overfit_gap=0.1).epochs_used == [0, 1]
    assert sample_reward(h, last_n_epochs=10, overfit_gap=0.1).epochs_used == [0, 1, 2]


def test_reward_skips_nan_epochs_and_averages_samples():
    h = _hist(train=[0.5, np.nan, 0.6], val=[0.4, np.nan, 0.5])
    assert sample_reward(h, 3, 0.1).epochs_used == [0, 2]
    mean, parts = trial_reward([_hist([0.5], [0.5]), _hist([0.7], [0.7])], 1, 0.1)
    assert mean == pytest.approx(0.6) and [p.reward for p in parts] == pytest.approx([0.5, 0.7])


# --------------------------------------------------------------------------- models
@pytest.mark.parametrize("name", ["basiccnn", "fastcnn", "wrn_10_1"])
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_every_builtin_model_builds_and_trains_a_step(name, shape):
    model = build_model(name, shape, 10)
    assert model.output_shape == (None, 10)
    x, y = make_images(16, 10, shape[:2], channels=shape[2])
    trainer = Trainer(model, LabelledImages(x, y), FitSettings(epochs=1, batch_size=16))
    before = [w.copy() for w in model.get_weights()]
    history = trainer.fit((), 0, LabelledImages(x[:8], y[:8]))
    assert history.finite and len(history.val_accuracy) == 1
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_basiccnn_size_matches_deepaugment():
    assert abs(build_model("basiccnn", (32, 32, 3), 10).count_params() - 1_250_858) < 1000
    assert 0.85e6 < build_model("basiccnn", (28, 28, 1), 10).count_params() < 0.95e6


def test_wrn_rejects_bad_depth():
    with pytest.raises(ModelConfigError, match="6N \\+ 4"):
        build_model("wrn_12_2", (32, 32, 3), 10)


CUSTOM = textwrap.dedent(
    """
    import keras
    import tensorflow as tf

    def tiny(input_shape, n_classes, units=8):
        return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                                 keras.layers.Dense(units, activation="relu"),
                                 keras.layers.Dense(n_classes, activation="softmax")])

    def wrong_outputs(input_shape, n_classes):
        return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(3)])

    class Explode(keras.layers.Layer):
        def call(self, x, training=None):
            return x * float("inf") if training else x

    def exploding(input_shape, n_classes):
        return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), Explode(),
                                 keras.layers.Dense(n_classes)])

    class Broken(keras.layers.Layer):
        def call(self, x, training=None):
            if training:
                tf.debugging.assert_less(tf.reduce_max(x), -1.0, message="deliberately broken layer")
            return x

    def broken(input_shape, n_classes):
        return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), Broken(),
                                 keras.layers.Dense(n_classes)])
    """
)


@pytest.fixture
def custom_models(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(CUSTOM)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_models"
    sys.modules.pop("my_models", None)


def test_custom_model_through_a_dotted_path(custom_models):
    model = build_model("my_models.tiny", (12, 12, 1), 4, units=5)
    assert model.layers[1].units == 5 and model.output_shape == (None, 4)
    assert build_model("my_models:tiny", (12, 12, 1), 4).output_shape == (None, 4)
    with pytest.raises(ModelConfigError, match="output has 3 units, the data has 4 classes"):
        build_model("my_models.wrong_outputs", (12, 12, 1), 4)
    with pytest.raises(ModelConfigError, match="has no callable 'nope'"):
        build_model("my_models.nope", (12, 12, 1), 4)
    with pytest.raises(ModelConfigError, match="cannot import module 'not_a_module'"):
        build_model("not_a_module.f", (12, 12, 1), 4)
    with pytest.raises(ModelConfigError, match="unknown model 'resnet'"):
        build_model("resnet", (12, 12, 1), 4)


# --------------------------------------------------------------------------- trials
def _data(n=120, size=(14, 14)):
    x, y = make_images(n, 4, size, seed=1)
    # Make the classes learnable: brightness encodes the label.
    x = np.clip(x // 4 + (y[:, None, None, None] * 50), 0, 255).astype(np.uint8)
    return LabelledImages(x, y)


POLICY = Policy.from_pairs([[("rotate", 0.5), ("cutout", 0.4)], [("translate-x", 0.3), ("crop", 0.5)]])
OTHER = Policy.from_pairs([[("shear", 0.9), ("dropout", 0.4)], [("invert", 1.0), ("gaussian-blur", 0.5)]])
SETTINGS = ChildSettings(model="fastcnn", model_options={"width": 4, "dense": 8}, epochs=3, batch_size=30,
                         last_n_epochs=2, validation_sample_size=40, opt_samples=2)  # fmt: skip


def test_same_seed_same_reward_and_no_retrace():
    data = _data()
    runner = TrialRunner(data, _data(100), 4, SETTINGS, seed=5)
    first = runner.run(POLICY)
    other = runner.run(OTHER)
    again = runner.run(POLICY)
    assert first["status"] == "ok" and len(first["histories"]) == 2
    assert again["reward"] == first["reward"] and again["histories"] == first["histories"]
    assert other["histories"] != first["histories"]
    assert runner.trainer.traces == 1  # one trace for the process, whatever the policy


def test_pretraining_sets_the_starting_weights():
    data, pool = _data(), _data(100)
    plain = TrialRunner(data, pool, 4, SETTINGS, seed=5)
    pre = TrialRunner(data, pool, 4, ChildSettings(**{**SETTINGS.__dict__, "first_train_epochs": 2}), seed=5)
    assert any(not np.array_equal(a, b) for a, b in zip(plain.model.get_weights(), pre.model.get_weights()))
    start = [w.copy() for w in pre.model.get_weights()]
    pre.run(POLICY)
    pre.trainer.reset()
    assert all(np.array_equal(a, b) for a, b in zip(start, pre.model.get_weights()))


def test_nan_loss_marks_the_trial_failed_with_reward_zero(custom_models):
    settings = ChildSettings(**{**SETTINGS.__dict__, "model": "my_models.exploding", "model_options": {}})
    record = TrialRunner(_data(), _data(100), 4, settings, seed=1).run(POLICY)
    assert record["status"] == "failed" and record["reward"] == 0.0
    assert "non-finite loss" in record["reason"]


def test_an_exception_marks_the_trial_failed_and_is_reported(custom_models):
    settings = ChildSettings(**{**SETTINGS.__dict__, "model": "my_models.broken", "model_options": {}})
    record = TrialRunner(_data(), _data(100), 4, settings, seed=1).run(POLICY)
    assert record["status"] == "failed" and record["reward"] == 0.0
    assert "deliberately broken layer" in record["reason"]
