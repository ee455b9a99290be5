"""Child models, the resettable trainer, rewards and one trial."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from deepaug_pipeline.augment import ops as ops_lib
from deepaug_pipeline.augment.baselines import base_params
from deepaug_pipeline.augment.policy import Policy
from deepaug_pipeline.config import ChildConfig
from deepaug_pipeline.data import LabelledImages
from deepaug_pipeline.models import ModelConfigError, build_model
from deepaug_pipeline.models.training import FitSettings, History, Trainer
from deepaug_pipeline.search.records import FitRequest
from deepaug_pipeline.search.reward import reward, validated_epochs
from deepaug_pipeline.search.trial import TrialRunner
from tests.conftest import make_images


def _hist(train, val, loss=None):
    loss = loss or [1.0] * len(val)
    return History(np.array(loss), np.array(train, float), np.array(loss), np.array(val, float))


# --------------------------------------------------------------------------- reward
def test_default_reward_is_the_mean_of_the_last_k_epochs():
    h = _hist(train=[0.5, 0.7, 0.85, 0.95, 0.99], val=[0.45, 0.65, 0.78, 0.80, 0.70])
    r = reward(h, "last", last_n_epochs=2, overfit_gap=0.10)
    assert r.epochs_used == [3, 4] and r.value == pytest.approx(0.75) and not r.fallback
    assert reward(h, "last", last_n_epochs=10, overfit_gap=0.1).epochs_used == [0, 1, 2, 3, 4]
    assert validated_epochs("last", 2) == 2 and validated_epochs("best_non_overfit", 2) is None


def test_deepaugment_rule_uses_the_k_best_non_overfit_epochs():
    h = _hist(train=[0.5, 0.7, 0.85, 0.95, 0.99], val=[0.45, 0.65, 0.78, 0.80, 0.70])
    r = reward(h, "best_non_overfit", last_n_epochs=2, overfit_gap=0.10)
    # epoch 3 (gap .15) and 4 (gap .29) overfit; the best two of epochs 0-2 are 0.65 and 0.78
    assert r.epochs_used == [1, 2] and r.value == pytest.approx((0.65 + 0.78) / 2) and not r.fallback


def test_deepaugment_rule_falls_back_to_the_last_k_when_every_epoch_overfits():
    h = _hist(train=[0.9, 0.95, 0.99], val=[0.5, 0.6, 0.55])
    r = reward(h, "best_non_overfit", last_n_epochs=2, overfit_gap=0.10)
    assert r.fallback and r.epochs_used == [1, 2] and r.value == pytest.approx(0.575)


def test_deepaugment_rule_ties_keep_the_earlier_epochs_and_skips_nan():
    h = _hist(train=[0.6, 0.6, 0.6], val=[0.6, 0.6, 0.6])
    assert reward(h, "best_non_overfit", 2, 0.1).epochs_used == [0, 1]
    h = _hist(train=[0.5, np.nan, 0.6], val=[0.4, np.nan, 0.5])
    assert reward(h, "best_non_overfit", 3, 0.1).epochs_used == [0, 2]


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


def test_a_fit_whose_loss_goes_non_finite_stops_at_that_epoch():
    """A diverged fit is a failed one: it spends no more epochs (a WRN-28-10 on a GPU would spend hours)."""
    import keras

    class ExplodeFromEpoch2(keras.layers.Layer):  # finite for 2 epochs of 4 steps, then inf
        def build(self, input_shape):
            self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False)

        def call(self, x, training=None):
            if not training:
                return x
            self.calls.assign_add(1.0)
            return tf.where(self.calls > 8.0, x * float("inf"), x)

    x, y = make_images(64, 10, (28, 28))
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), ExplodeFromEpoch2(), keras.layers.Dense(10)])
    trainer = Trainer(model, LabelledImages(x, y), FitSettings(epochs=6, batch_size=16))
    history = trainer.fit((), 0, LabelledImages(x[:8], y[:8]))
    assert int(trainer.optimizer.iterations) == 3 * 4  # epochs 0-2, not 6
    assert np.isfinite(history.train_loss[:2]).all() and np.isnan(history.train_loss[2:]).all()
    assert np.isfinite(history.val_loss[:2]).all() and np.isnan(history.val_accuracy[3:]).all()  # skipped: NaN
    assert not history.finite and len(history.train_loss) == 6


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_a_mixed_precision_model_trains_with_a_float32_loss(policy):
    """A float16 model's loss times the batch size failed to build (float16 * float32), so every fit failed."""
    import keras

    x, y = make_images(64, 10, (28, 28))
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_model("fastcnn", (28, 28, 1), 10, width=4, dense=8)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.dtype_policy.compute_dtype == policy.split("_")[1]
    trainer = Trainer(model, LabelledImages(x, y), FitSettings(epochs=2, batch_size=16))
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
    before = [w.copy() for w in model.get_weights()]
    history = trainer.fit((), 0, LabelledImages(x[:16], y[:16]))
    assert history.finite and history.train_loss[1] < history.train_loss[0]
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    trainer.reset()
    assert np.array_equal(trainer.fit((), 0, LabelledImages(x[:16], y[:16])).train_loss, history.train_loss)


def test_basiccnn_size_matches_deepaugment():
    assert abs(build_model("basiccnn", (32, 32, 3), 10).count_params() - 1_250_858) < 1000
    assert 0.85e6 < build_model("basiccnn", (28, 28, 1), 10).count_params() < 0.95e6


def test_a_model_that_ends_in_softmax_is_told_from_one_that_ends_in_logits():
    """The loss applies softmax to logits only: a second softmax trains a model poorly without a word."""
    import keras

    from deepaug_pipeline.models import outputs_probabilities

    def ending(*last) -> keras.Model:
        inputs = keras.Input((4,))
        x = keras.layers.Dense(3)(inputs)
        for layer in last:
            x = layer(x)
        return keras.Model(inputs, x)

    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    nested = keras.Sequential([keras.Input((4,)), inner])
    assert not outputs_probabilities(ending())
    assert not outputs_probabilities(ending(keras.layers.Activation("relu")))
    for model in (ending(keras.layers.Softmax()), ending(keras.layers.Activation("softmax")), inner, nested,
                  ending(keras.layers.Dense(3, activation=tf.nn.softmax))):  # fmt: skip
        assert outputs_probabilities(model), model.layers[-1]


def test_evaluates_default_model_options_are_the_wrns_and_another_model_gets_none():
    from deepaug_pipeline.config import EvaluateConfig

    assert EvaluateConfig().model_options == {"dropout": 0.0, "weight_decay": 0.0005}
    assert EvaluateConfig(model="fastcnn").model_options == {}  # it was refused over options nobody wrote
    assert EvaluateConfig(model="wrn_16_4").model_options == {"dropout": 0.0, "weight_decay": 0.0005}


def test_the_shipped_evaluate_config_takes_another_model_by_one_key():
    """conf/base names no WRN options, so overriding only ``evaluate.model`` (Kedro merges the rest) is a valid config."""
    import yaml

    from deepaug_pipeline.config import validate_params

    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf/base/parameters_evaluate.yml").read_text())
    assert validate_params({"evaluate": {**base["evaluate"], "model": "fastcnn"}}).evaluate.model_options == {}
    assert validate_params(base).evaluate.model_options == {"dropout": 0.0, "weight_decay": 0.0005}


@pytest.mark.parametrize("model, options, message", [
    ("wrn_10_1", {"dropout": 1.5}, r"dropout=1.5 \(it takes a number in \[0, 1\)\)"),
    ("basiccnn", {"dropout": 0.6}, r"dropout=0.6 \(it takes a number in \[0, 0.5\)\)"),  # its last dropout is twice the rate
    ("wrn_10_1", {"weight_decay": -1}, r"weight_decay=-1 \(it takes a finite number >= 0\)"),
    ("fastcnn", {"width": -3, "dense": 2.5}, r"width=-3 \(it takes an integer >= 1\); dense=2.5 \(it takes an integer >= 1\)"),
    ("wrn_10_1", {"dropout": "high"}, r"dropout='high'"),
])  # fmt: skip
def test_model_option_values_keras_would_refuse_mid_run_are_refused_by_the_config(model, options, message):
    from deepaug_pipeline.config import ConfigError, validate_params

    with pytest.raises(ConfigError, match=rf"bad value for 'parameters.search.child.model_options': model '{model}': bad option value {message}"):
        validate_params({"search": {"child": {"model": model, "model_options": options}}})
    validate_params({"search": {"child": {"model": "basiccnn", "model_options": {"dropout": 0.4}}}})  # in range: taken


def test_no_setting_takes_inf_or_nan():
    from deepaug_pipeline.config import ConfigError, validate_params

    for params in ({"evaluate": {"learning_rate": float("inf")}}, {"search": {"child": {"learning_rate": float("nan")}}}):
        with pytest.raises(ConfigError, match=r"learning_rate': Input should be a finite number"):
            validate_params(params)


def test_no_number_setting_takes_true_or_false():
    from deepaug_pipeline.config import ConfigError, validate_params

    for params, key in (({"seed": True}, "seed"), ({"search": {"iterations": True}}, "search.iterations"),
                        ({"search": {"child": {"learning_rate": False}}}, "search.child.learning_rate"),
                        ({"seed": np.True_}, "seed"), ({"ingest": {"value_range": [False, True]}}, "ingest.value_range")):  # fmt: skip
        with pytest.raises(ConfigError, match=rf"'parameters.{key}': takes a number, not true or false \(got "):
            validate_params(params)
    validated = validate_params({"seed": 3, "ingest": {"value_range": [0, 1]},
                                 "search": {"iterations": None, "fresh_start": np.True_, "child": {"learning_rate": 1}}})  # fmt: skip
    assert (validated.seed, validated.ingest.value_range, validated.search.child.learning_rate, validated.search.fresh_start) == (3, (0.0, 1.0), 1.0, True)


def test_a_number_yaml_reads_as_a_string_is_taken_and_a_word_is_refused():
    """PyYAML reads YAML 1.1, where ``1e-3`` (no dot) is a string: refusing strings for numbers would refuse what
    users write, so "1e-3" and "3" are taken as numbers, and only text that is no number is refused."""
    import yaml

    from deepaug_pipeline.config import ConfigError, validate_params

    params = yaml.safe_load("search: {iterations: '3', child: {learning_rate: 1e-3}}")
    assert params["search"]["child"]["learning_rate"] == "1e-3"  # what PyYAML hands over
    validated = validate_params(params)
    assert (validated.search.iterations, validated.search.child.learning_rate) == (3, 0.001)
    with pytest.raises(ConfigError, match=r"'parameters.search.child.learning_rate': Input should be a valid number"):
        validate_params(yaml.safe_load("search: {child: {learning_rate: fast}}"))


def test_wrn_rejects_bad_depth():
    with pytest.raises(ModelConfigError, match="6N \\+ 4"):
        build_model("wrn_12_2", (32, 32, 3), 10)


CUSTOM = textwrap.dedent(
    """
    import keras
    import tensorflow as tf

    def wrapped(*args, **kwargs):
        return tiny(*args, **kwargs)

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


def test_model_options_a_builder_does_not_take_are_refused_by_the_config_naming_the_key(custom_models):
    import inspect

    from deepaug_pipeline.config import ConfigError, validate_params
    from deepaug_pipeline.model_names import BUILTIN_OPTIONS
    from deepaug_pipeline.models import basiccnn, fastcnn, wide_resnet

    # The table the config reads (no Keras there) is the builders' own keywords.
    for name, builder, fixed in (("basiccnn", basiccnn, ()), ("fastcnn", fastcnn, ()), ("wrn", wide_resnet, ("depth", "width"))):
        keywords = [p for p in list(inspect.signature(builder).parameters)[2:] if p not in fixed]
        assert BUILTIN_OPTIONS[name] == tuple(keywords)
    with pytest.raises(ConfigError, match=r"bad value for 'parameters\.evaluate\.model_options': model 'wrn_10_1' takes no "
                                          r"option 'dropuot' \(it takes dropout, weight_decay\)"):
        validate_params({"evaluate": {"model_options": {"dropuot": 0.1}}})
    with pytest.raises(ConfigError, match=r"'parameters\.search\.child\.model_options': model 'my_models\.tiny' takes no option 'unit'"):
        validate_params({"search": {"child": {"model": "my_models.tiny", "model_options": {"unit": 3}}}})
    validate_params({"search": {"child": {"model": "my_models.tiny", "model_options": {"units": 3}}}})
    validate_params({"search": {"child": {"model": "my_models.wrapped", "model_options": {"anything": 3}}}})  # **kwargs
    with pytest.raises(ConfigError, match=r"model 'my_models\.tiny' takes no option 'n_classes' \(it takes units\)"):
        validate_params({"evaluate": {"model": "my_models.tiny", "model_options": {"n_classes": 3}}})


# --------------------------------------------------------------------------- trials
def _data(n=120, size=(14, 14)):
    x, y = make_images(n, 4, size, seed=1)
    # Make the classes learnable: brightness encodes the label.
    x = np.clip(x // 4 + (y[:, None, None, None] * 50), 0, 255).astype(np.uint8)
    return LabelledImages(x, y)


POLICY = Policy.from_pairs([[("rotate", 0.5), ("cutout", 0.4)], [("translate-x", 0.3), ("crop", 0.5)]] * 5)
OTHER = Policy.from_pairs([[("shear", 0.9), ("dropout", 0.4)], [("invert", 1.0), ("gaussian-blur", 0.5)]] * 5)
IDENTITY = Policy.from_pairs([[("identity", 0.0), ("identity", 0.0)]] * 10, p_none=1.0)
SETTINGS = ChildConfig(model="fastcnn", model_options={"width": 4, "dense": 8}, epochs=3, batch_size=30, learning_rate=0.05,
                       last_n_epochs=2, validation_sample_size=40)  # fmt: skip
POLICY_OPS = tuple(sorted({ops_lib.OP_INDEX[o.op] for p in (POLICY, OTHER) for s in p.sub_policies for o in s.operations}))


def _runner(*args, **kwargs) -> TrialRunner:
    """A runner whose child graph holds the ops of the policies above, as a search's holds its space's (ops outside
    it act as the identity): with the whole table's graph this module's tests took 68 s instead of 38 s."""
    return TrialRunner(*args, op_indices=POLICY_OPS, **kwargs)


def _same(a: dict, b: dict) -> bool:
    """Equal curves (NaN, an epoch without validation, equals NaN)."""
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def _fit(policy: Policy, base: str = "standard", seed_index: int = 0) -> FitRequest:
    return FitRequest(f"fit/{base}/{seed_index}", "search", base, seed_index, policy.to_dict())


def test_same_seed_same_reward_after_other_fits_and_nothing_retraces():
    # The seeds drawn up front, as a search draws them: a seed drawn after the first fit costs the next fit a new
    # instance of the graph (3 s here). The test below draws one late on purpose.
    runner = _runner(_data(), _data(100), 4, SETTINGS, seed=5, n_seeds=3)
    first = runner.run(_fit(POLICY))
    between = [runner.run(_fit(OTHER)), runner.run(_fit(IDENTITY, "none", 1)), runner.run(_fit(POLICY, "crop", 2))]
    again = runner.run(_fit(POLICY))
    assert first.status == "ok" and np.isnan(first.history["val_accuracy"][0])  # only the last 2 epochs validated
    assert again.reward == first.reward and _same(again.history, first.history)
    assert not any(_same(b.history, first.history) for b in between)
    assert runner.trainer.traces == 1  # one trace for the process: policies, bases and seeds are data
    # ... and no tf.data function inside it: tf.data instantiates a dataset's functions for every iterator, i.e. every
    # fit, which for a loop body holding the augmentation cost ~1.5 s a fit (`for x, y in ds` becomes a ReduceDataset).
    validation = runner.validation(0)
    fit_arguments = (runner._augmentation(_fit(POLICY)), tf.constant(0, tf.int64), tf.constant(validation.x),
                     tf.constant(validation.y.astype(np.int32)))  # fmt: skip
    graph = runner.trainer._fit_fn.get_concrete_function(*fit_arguments).graph
    dataset_functions = {op.type for op in graph.get_operations()} & {"ReduceDataset", "MapDataset", "ParallelMapDatasetV2"}
    assert not dataset_functions, dataset_functions


def test_a_fit_is_the_same_whichever_seed_the_process_fitted_first():
    """A resumed search, or a Dask worker, may first fit a seed other than 0; Keras then last seeded TensorFlow with
    that seed's, and a graph traced under it shuffled the data in another order for every later fit."""
    in_order = _runner(_data(), _data(100), 4, SETTINGS, seed=5)
    resumed = _runner(_data(), _data(100), 4, SETTINGS, seed=5)
    expected = in_order.run(_fit(POLICY, seed_index=0))
    resumed.run(_fit(POLICY, seed_index=2))
    again = resumed.run(_fit(POLICY, seed_index=0))
    assert again.reward == expected.reward and _same(again.history, expected.history)


def test_seeds_change_initial_weights_data_order_and_validation_sample():
    runner = _runner(_data(), _data(100), 4, SETTINGS, seed=5)
    a, b = runner.start_state(0), runner.start_state(1)
    assert any(not np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(runner.validation(0).y, runner.validation(1).y) or not np.array_equal(runner.validation(0).x, runner.validation(1).x)
    assert not _same(runner.run(_fit(IDENTITY, "none", 0)).history, runner.run(_fit(IDENTITY, "none", 1)).history)


def test_a_validation_sample_larger_than_the_pool_is_the_whole_pool_for_every_seed():
    """The sample is at most the pool: every seed then scores the same images (no sampling noise between seeds)."""
    from deepaug_pipeline.search.trial import sample_validation_set

    pool = _data(100)
    runner = _runner(_data(), pool, 4, SETTINGS.model_copy(update={"validation_sample_size": 500}), seed=5)
    for seed_index in (0, 1):
        assert np.array_equal(runner.validation(seed_index).x, pool.x) and np.array_equal(runner.validation(seed_index).y, pool.y)
    part = sample_validation_set(pool, 40, np.random.default_rng(0))
    rows = {row.tobytes() for row in pool.x.reshape(len(pool.x), -1)}
    drawn = [row.tobytes() for row in part.x.reshape(40, -1)]
    assert len(part.y) == 40 and all(row in rows for row in drawn) and len(set(drawn)) == 40  # without replacement


def test_disjoint_validation_samples_share_no_image_until_the_pool_runs_out():
    pool = _data(100)
    pool.x[:, 0, 0, 0] = np.arange(100)  # each image names itself
    runner = _runner(_data(), pool, 4, SETTINGS.model_copy(update={"validation_sample_size": 30, "validation_samples": "disjoint"}), seed=5)
    parts = [set(runner.validation(seed_index).x[:, 0, 0, 0].tolist()) for seed_index in range(4)]
    assert [len(p) for p in parts] == [30] * 4 and len(parts[0] | parts[1] | parts[2]) == 90
    assert len(parts[3] - (parts[0] | parts[1] | parts[2])) == 10 and len(parts[3] & parts[0]) == 20  # wraps round
    drawn = _runner(_data(), pool, 4, SETTINGS.model_copy(update={"validation_sample_size": 30, "validation_samples": "overlapping"}), seed=5)
    assert set(drawn.validation(0).x[:, 0, 0, 0].tolist()) != parts[0]  # independent draws (the default)
    overlaps = [len(set(drawn.validation(i).x[:, 0, 0, 0].tolist()) & set(drawn.validation(i + 1).x[:, 0, 0, 0].tolist())) for i in range(3)]
    assert all(o > 0 for o in overlaps)  # two draws of 30 of 100 miss each other with chance 2e-6


def test_validation_inside_the_fit_scores_every_image_as_evaluate_does():
    """The fit's validation loops over chunks in the graph; the last chunk here is a partial one (100 = 3 × 30 + 10)."""
    import keras

    data, validation = _data(), _data(100)
    keras.utils.set_random_seed(1)
    model = build_model("fastcnn", data.x.shape[1:], 4, width=4, dense=8)
    trainer = Trainer(model, data, FitSettings(epochs=2, batch_size=30, eval_batch_size=30, validate_last=1))
    history = trainer.fit((), 3, validation)
    loss, accuracy = trainer.evaluate(validation)
    assert np.isnan(history.val_accuracy[0]) and history.val_accuracy[-1] == pytest.approx(accuracy)
    assert history.val_loss[-1] == pytest.approx(loss, rel=1e-5)


def test_identity_policy_under_the_standard_base_trains_on_different_images_than_under_none():
    runner = _runner(_data(), _data(100), 4, SETTINGS, seed=5)
    x = tf.constant(_data().x[:32].astype("float32") / 255.0)
    seed = tf.constant([3, 4], tf.int64)
    policy = IDENTITY.tensors()
    plain = runner.trainer.augment(x, (base_params("none"), policy), seed).numpy()
    standard = runner.trainer.augment(x, (base_params("standard"), policy), seed).numpy()
    assert np.array_equal(plain, x.numpy()) and not np.allclose(standard, x.numpy())
    assert not _same(runner.run(_fit(IDENTITY, "none")).history, runner.run(_fit(IDENTITY, "standard")).history)


def test_pretraining_sets_each_seeds_starting_weights():
    data, pool = _data(), _data(100)
    plain = _runner(data, pool, 4, SETTINGS, seed=5)
    pre = _runner(data, pool, 4, ChildConfig(**{**SETTINGS.model_dump(), "first_train_epochs": 2}), seed=5)
    assert any(not np.array_equal(a, b) for a, b in zip(plain.start_state(0), pre.start_state(0)))
    assert pre._pretrainer.settings.validate_last == 1  # nothing reads the pre-training's other epochs
    start = [w.copy() for w in pre.start_state(0)]
    pre.run(_fit(POLICY))
    assert all(np.array_equal(a, b) for a, b in zip(start, pre.start_state(0)))


def test_nan_loss_marks_the_trial_failed_with_reward_zero(custom_models):
    settings = ChildConfig(**{**SETTINGS.model_dump(), "model": "my_models.exploding", "model_options": {}})
    outcome = _runner(_data(), _data(100), 4, settings, seed=1).run(_fit(POLICY))
    assert outcome.status == "failed" and outcome.reward == 0.0
    assert "non-finite loss" in outcome.reason


def test_a_fit_out_of_memory_is_lost_not_a_failed_policy(monkeypatch):
    """Whether a fit fits in memory depends on what else holds the device (Dask workers sharing one GPU): a lost
    outcome, which the search runs again, not a reward of 0 told to the optimiser."""
    runner = _runner(_data(), _data(100), 4, SETTINGS, seed=1)

    def out_of_memory(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[128,160,32,32]\nmore")

    monkeypatch.setattr(runner.trainer, "fit", out_of_memory)
    outcome = runner.run(_fit(POLICY))
    assert outcome.lost and outcome.status == "failed"
    assert outcome.reason == "out of memory (ResourceExhaustedError: OOM when allocating tensor with shape[128,160,32,32])"


def test_an_exception_marks_the_trial_failed_and_is_reported(custom_models):
    settings = ChildConfig(**{**SETTINGS.model_dump(), "model": "my_models.broken", "model_options": {}})
    outcome = _runner(_data(), _data(100), 4, settings, seed=1).run(_fit(POLICY))
    assert outcome.status == "failed" and outcome.reward == 0.0
    assert "deliberately broken layer" in outcome.reason
