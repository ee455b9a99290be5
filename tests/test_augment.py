"""Augmentation engine: every op's contract, policies, JSON, the Keras layer, baselines, the grid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from deepaug_pipeline.augment import baselines
from deepaug_pipeline.augment import imaging, kernels, ops as ops_lib
from deepaug_pipeline.augment.grid import sample_grid
from deepaug_pipeline.augment.imaging import ImageBatchError
from deepaug_pipeline.augment.policy import Policy, PolicyError
from deepaug_pipeline.config import ConfigError, SearchConfig, parse_config

REPO = Path(__file__).resolve().parents[1]
SEED = tf.constant([3, 4], tf.int64)


def _batch(channels: int, dtype=np.uint8, n: int = 6, size=(27, 31), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # A smooth-ish image with structure, so geometric ops visibly move content.
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    base = (np.sin(xx / 3.0) * np.cos(yy / 4.0) + 1) / 2
    imgs = np.stack([base * rng.uniform(0.5, 1.0) for _ in range(n)])[..., None].repeat(channels, axis=-1)
    imgs = np.clip(imgs + rng.uniform(-0.1, 0.1, imgs.shape), 0, 1)
    return (imgs * 255).round().astype(np.uint8) if dtype == np.uint8 else imgs.astype(dtype)


def _apply(name, images, m, seed=SEED):
    x = tf.constant(images)
    n = tf.shape(x)[0]
    out = imaging.from_unit(
        ops_lib.apply_ops(imaging.to_unit(x), tf.fill([n], ops_lib.OP_INDEX[name]), tf.fill([n], float(m)), seed),
        x.dtype,
    )
    return out.numpy()


ALL_OPS = [op.name for op in ops_lib.OPS]


def test_the_table_holds_every_op_the_issue_lists():
    deepaugment = {
        "crop", "gaussian-blur", "rotate", "shear", "translate-x", "translate-y", "horizontal-flip",
        "vertical-flip", "sharpen", "emboss", "additive-gaussian-noise", "dropout", "coarse-dropout",
        "gamma-contrast", "brighten", "invert", "fog", "clouds", "add-to-hue-and-saturation", "coarse-salt-pepper",
    }  # fmt: skip
    extra = {"histogram-equalize", "grayscale", "perspective-transform", "elastic-transform"}
    autoaugment = {
        "identity", "auto-contrast", "equalize", "solarize", "posterize", "contrast", "color", "brightness",
        "sharpness", "shear-x", "shear-y", "translate-x", "translate-y", "rotate", "cutout",
    }  # fmt: skip
    assert set(ops_lib.DEEPAUGMENT_OPS) == deepaugment
    assert deepaugment | extra | autoaugment == set(ALL_OPS)


def test_randaugments_list_is_the_authors_in_its_order():
    """A draw picks the op at its place in the list, so the order is part of what a seed produces: pinned (the
    RandAugment authors' list, with identity; torchvision orders the same ops otherwise)."""
    assert ops_lib.RANDAUGMENT_OPS == (
        "identity", "auto-contrast", "equalize", "rotate", "solarize", "color", "posterize",
        "contrast", "brightness", "sharpness", "shear-x", "shear-y", "translate-x", "translate-y",
    )  # fmt: skip
    assert sorted(op.randaugment for op in ops_lib.OPS if op.randaugment is not None) == list(range(14))  # no gap, no tie


def test_docs_are_generated_from_the_table():
    assert (REPO / "docs" / "ops.md").read_text() == ops_lib.ops_markdown()


def test_colour_ops_drop_out_for_grayscale():
    gray = ops_lib.search_ops(1)
    assert "add-to-hue-and-saturation" not in gray and len(gray) == 19
    assert len(ops_lib.search_ops(3)) == 20
    with pytest.raises(ValueError, match="unknown augmentation op"):
        ops_lib.search_ops(3, ("rotate", "twirl"))


def test_config_refuses_an_unknown_op_by_name_without_loading_tensorflow():
    SearchConfig(ops=ALL_OPS)  # every op in the table is known
    with pytest.raises(ConfigError, match=r"unknown op\(s\) \['twirl'\] in 'ops'"):
        parse_config(SearchConfig, {"ops": ["rotate", "twirl"]}, "search")
    with pytest.raises(ConfigError, match=r"'ops' lists 'rotate' more than once"):  # the optimiser crashed at its first fit
        parse_config(SearchConfig, {"ops": ["rotate", "shear", "rotate"]}, "search")
    # Parameters are validated before any node runs: in a fresh interpreter (this one has TensorFlow), that loads none.
    probe = "import sys; from deepaug_pipeline.config import SearchConfig; SearchConfig(ops=['rotate']); print('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "False\n"
    # The names config validation reads cannot drift from the table: ops.py refuses to load if they differ.
    with pytest.raises(RuntimeError, match=r"at position 2 it has 'rotate', the table 'twirl'"):
        ops_lib._check_op_names(("identity", "crop", "twirl", *ALL_OPS[3:]))


@pytest.mark.parametrize("name", ALL_OPS)
@pytest.mark.parametrize("channels", [1, 3])
def test_op_keeps_shape_dtype_and_range(name, channels):
    for dtype in (np.uint8, np.float32):
        images = _batch(channels, dtype)
        for m in (0.0, 1.0):
            out = _apply(name, images, m)
            assert out.shape == images.shape and out.dtype == images.dtype
            top = 255 if dtype == np.uint8 else 1.0
            assert out.min() >= 0 and out.max() <= top and np.isfinite(out).all()
            if m == 0.0 and ops_lib.OPS[ops_lib.OP_INDEX[name]].identity_at_zero:
                np.testing.assert_allclose(out, images, atol=1e-5 if dtype != np.uint8 else 0)


@pytest.mark.parametrize("name", [op.name for op in ops_lib.OPS if op.name != "identity"])
def test_op_changes_the_image_at_full_magnitude(name):
    channels = 3 if ops_lib.OPS[ops_lib.OP_INDEX[name]].colour_only else 1
    images = _batch(channels, np.float32, n=8)
    diff = np.abs(_apply(name, images, 1.0) - images).mean()
    assert diff > 1e-3, f"{name} at m=1 left the images unchanged (mean abs diff {diff})"


@pytest.mark.parametrize("name", ["rotate", "additive-gaussian-noise", "gaussian-blur", "translate-x", "cutout", "elastic-transform"])
def test_effect_grows_with_magnitude(name):
    images = _batch(1, np.float32, n=16)
    diffs = [np.abs(_apply(name, images, m) - images).mean() for m in (0.2, 0.5, 1.0)]
    assert diffs[0] < diffs[1] < diffs[2], diffs


# Signed ops whose kernel draws nothing else: given the table's range, each image gets the kernel at +p or at -p.
_SINGLE_DRAW_SIGNED = [op.name for op in ops_lib.OPS if op.signed and op.name not in ("shear", "add-to-hue-and-saturation")]


@pytest.mark.parametrize("name", _SINGLE_DRAW_SIGNED)
def test_the_tables_signed_flag_draws_each_images_direction(name):
    spec = ops_lib.OPS[ops_lib.OP_INDEX[name]]
    images = np.repeat(_batch(3 if spec.colour_only else 1, np.float32, n=1), 32, axis=0)
    out = _apply(name, images, 0.8)
    p = spec.param_of(tf.fill([32], 0.8))
    up, down = (spec.fn(tf.constant(images), sign * p, kernels.Rng(tf.constant([0, 0], tf.int64))).numpy() for sign in (1.0, -1.0))
    is_up = np.isclose(out, up, atol=1e-6).all(axis=(1, 2, 3))
    is_down = np.isclose(out, down, atol=1e-6).all(axis=(1, 2, 3))
    assert (is_up | is_down).all() and is_up.any() and is_down.any(), (is_up.sum(), is_down.sum())


@pytest.mark.parametrize("name", [op.name for op in ops_lib.OPS if op.colour_only])
def test_the_tables_colour_only_flag_leaves_grayscale_images(name):
    images = _batch(1, np.float32, n=8)
    np.testing.assert_array_equal(_apply(name, images, 1.0), images)


def test_parameters_grow_with_magnitude_in_the_table():
    for op in ops_lib.OPS:
        if op.high != op.low:
            assert float(op.param_of(0.3)) < float(op.param_of(0.7)), op.name


def test_randomness_is_per_image_and_seeded():
    one = _batch(1, np.float32, n=1)
    same = np.repeat(one, 8, axis=0)
    for name in ("rotate", "cutout", "additive-gaussian-noise", "crop"):
        out = _apply(name, same, 0.8)
        assert any(not np.allclose(out[0], o) for o in out[1:]), f"{name}: identical images came out identical"
        np.testing.assert_array_equal(out, _apply(name, same, 0.8))  # same seed, same output
        assert not np.allclose(out, _apply(name, same, 0.8, seed=tf.constant([9, 9], tf.int64)))


def test_empty_batch_passes_through():
    out = ops_lib.apply_ops(tf.zeros([0, 12, 12, 3]), tf.zeros([0], tf.int32), tf.zeros([0]), SEED)
    assert out.shape == (0, 12, 12, 3)


# --------------------------------------------------------------------------- policies
def _policy(p_none=0.2) -> Policy:
    return Policy.from_pairs(
        [
            [("rotate", 0.5), ("cutout", 0.4)],
            [("gaussian-blur", 0.6), ("additive-gaussian-noise", 0.3)],
            [("contrast", 0.7), ("translate-x", 0.5)],
            [("emboss", 0.4), ("crop", 0.6)],
            [("invert", 1.0), ("dropout", 0.5)],
        ],
        p_none=p_none,
    )


def test_p_none_share_of_images_is_untouched():
    images = np.repeat(_batch(1, np.uint8, n=1), 4000, axis=0)
    out = _policy(p_none=0.2).apply(images, seed=5).numpy()
    untouched = np.mean([np.array_equal(o, images[0]) for o in out])
    assert 0.17 < untouched < 0.23
    assert np.array_equal(_policy(p_none=1.0).apply(images[:50], seed=5).numpy(), images[:50])


def test_sub_policies_are_drawn_uniformly():
    # Sub-policy k inverts with magnitude 1 only in slot k; count which images were inverted by each.
    pol = Policy.from_pairs([[("invert", 1.0), ("identity", 0.0)]] + [[("identity", 0.0), ("identity", 0.0)]] * 4, p_none=0.0)
    images = np.full((5000, 8, 8, 1), 10, np.uint8)
    inverted = (pol.apply(images, seed=1).numpy()[:, 0, 0, 0] == 245).mean()
    assert 0.17 < inverted < 0.23


def test_json_round_trip_and_combination(tmp_path):
    pol = _policy()
    again = Policy.load(pol.save(tmp_path / "p.json"))
    assert again == pol
    assert json.loads(pol.to_json())["schema_version"] == 1
    combined = Policy.combine([pol] * 5)
    assert len(combined.sub_policies) == 25 and combined.p_none == pol.p_none
    assert combined.apply(_batch(1), seed=0).shape == (6, 27, 31, 1)


def test_combined_policies_keep_the_base_they_were_found_on_and_must_share_it():
    on_standard = Policy.from_dict({**_policy().to_dict(), "metadata": {"base_augmentation": "standard"}})
    combined = Policy.combine([on_standard, on_standard])
    assert combined.metadata == {"base_augmentation": "standard"} and combined.as_layer()._base is not None
    on_none = Policy.from_dict({**_policy().to_dict(), "metadata": {"base_augmentation": "none"}})
    assert Policy.combine([_policy(), on_none]).metadata == {}  # no base recorded and base none: both run none
    with pytest.raises(PolicyError, match=r"found on different base augmentations \(none, standard\)"):
        Policy.combine([on_standard, _policy()])


def test_policies_built_by_hand_are_checked_as_their_json_is():
    from deepaug_pipeline.augment.policy import Operation, SubPolicy

    with pytest.raises(PolicyError, match=r"unknown op 'rotation'; known ops: identity, "):
        Operation("rotation", 0.5)
    for bad in (7.0, -0.1, float("nan")):
        with pytest.raises(PolicyError, match=r"rotate: magnitude must be a number in \[0, 1\]"):
            Operation("rotate", bad)
    for wrong in ("0.5", None, True):
        with pytest.raises(PolicyError, match=r"rotate: magnitude must be a number in \[0, 1\]"):
            Operation("rotate", wrong)
    with pytest.raises(PolicyError, match=r"rotate: probability must be a number in \[0, 1\]; got 1.5"):
        Operation("rotate", 0.5, 1.5)
    assert Operation("rotate", np.float32(0.5)).magnitude == 0.5  # numpy numbers are numbers
    with pytest.raises(PolicyError, match=r"p_none must be in \[0, 1\]; got -0.5"):
        Policy((SubPolicy((Operation("rotate", 0.5),)),), p_none=-0.5)


def test_probability_per_op_is_optional_and_applied():
    pol = Policy.from_dict(
        {"schema_version": 1, "p_none": 0.0, "sub_policies": [[{"op": "invert", "magnitude": 1.0, "probability": 0.5}]]}
    )
    out = pol.apply(np.full((4000, 8, 8, 1), 10, np.uint8), seed=2).numpy()
    assert 0.45 < (out[:, 0, 0, 0] == 245).mean() < 0.55


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"schema_version": 2, "sub_policies": [[{"op": "rotate", "magnitude": 0.1}]]}, r"'policy\.schema_version': Input should be 1 \(got 2\)"),
        ({"schema_version": 1, "sub_policies": [[{"op": "rotate", "magnitude": 0.1}], [{"op": "twirl", "magnitude": 0.2}]]}, r"'policy\.sub_policies\[1\]\[0\]\.op': unknown op 'twirl'; known ops: identity, crop"),
        ({"schema_version": 1, "sub_policies": [[{"op": "rotate", "magnitude": 1.5}]]}, r"'policy\.sub_policies\[0\]\[0\]\.magnitude': Input should be less than or equal to 1 \(got 1\.5\)"),
        ({"schema_version": 1, "sub_policies": [[{"op": "rotate", "magnitude": "big"}]]}, r"\[0\]\[0\]\.magnitude': Input should be a valid number \(got 'big'\)"),
        ({"schema_version": 1, "sub_policies": {}}, r"'policy\.sub_policies': Input should be a valid list"),
        ({"schema_version": 1, "p_none": -0.1, "sub_policies": [[{"op": "rotate", "magnitude": 0.1}]]}, r"'policy\.p_none': Input should be greater than or equal to 0 \(got -0\.1\)"),
        ({"schema_version": 1, "sub_policies": [[{"op": "rotate", "magnitude": 0.1, "prob": 1}]]}, r"unknown key 'policy\.sub_policies\[0\]\[0\]\.prob'"),
        ({"schema_version": 1, "sub_policies": [[{"op": "rotate", "magnitude": True}]]}, r"magnitude': Input should be a valid number \(got True\)"),
        ({"schema_version": 1, "sub_policies": [[]]}, r"'policy\.sub_policies\[0\]': List should have at least 1 item"),
        ({"schema_version": 1, "sub_policies": [[{"op": "rotate", "magnitude": 2}, {"op": "twirl", "magnitude": 0}]]}, r"\[0\]\[0\]\.magnitude': .*; bad value for 'policy\.sub_policies\[0\]\[1\]\.op'"),
        ([{"op": "rotate"}], r"'policy': Input should be a valid dictionary"),
        ({"schema_version": 1, "sub_policies": [], "metadata": {"base_augmentation": "crop+flip"}},
         r"'policy\.metadata': base_augmentation 'crop\+flip' is not one of none, crop, standard"),
        ({"schema_version": 1, "sub_policies": [], "metadata": {"base_augmentation": ["standard"]}},
         r"'policy\.metadata': base_augmentation \['standard'\] is not one of none, crop, standard"),
    ],
)
def test_bad_policy_json_is_rejected_naming_the_entry(tmp_path, payload, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(PolicyError, match=message):
        Policy.load(path)


def test_not_json_at_all(tmp_path):
    (tmp_path / "x.json").write_text("{nope")
    with pytest.raises(PolicyError, match=r"x\.json: not valid JSON"):
        Policy.load(tmp_path / "x.json")


# --------------------------------------------------------------------------- Keras layer and tf.data
def test_layer_is_identity_at_inference_and_survives_keras_save(tmp_path):
    inputs = keras.Input((27, 31, 1))
    x = _policy().as_layer(seed=1, value_range=(0, 255))(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    images = _batch(1, np.float32).astype(np.float32) * 255
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-5)
    layer = loaded.layers[1]
    assert layer.policy == _policy()
    np.testing.assert_array_equal(layer(images, training=False), images)
    trained = layer(images, training=True).numpy()
    assert trained.shape == images.shape and trained.max() <= 255 and not np.allclose(trained, images)


def test_a_saved_model_loads_in_a_process_that_imported_only_the_public_policy(tmp_path):
    model = keras.Sequential([keras.Input((27, 31, 1)), _policy().as_layer(seed=1, value_range=(0, 255)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    images = _batch(1, np.float32) * 255
    np.save(tmp_path / "x.npy", images)
    code = ("import numpy as np, sys; from deepaug_pipeline import Policy; import keras; "
            "m = keras.models.load_model(sys.argv[1]); np.save(sys.argv[2], m.predict(np.load(sys.argv[3]), verbose=0)); "
            "print(m.layers[0].policy == Policy.from_dict(m.layers[0].get_config()['policy']))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.keras"), str(tmp_path / "y.npy"), str(tmp_path / "x.npy")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model.predict(images, verbose=0), rtol=1e-5)


def test_the_layer_refuses_images_it_cannot_take_when_the_model_is_built():
    with pytest.raises(ImageBatchError, match=r"got shape \(None, 28, 28\).*add a channel axis to grayscale images without one"):
        keras.Sequential([keras.Input((28, 28)), _policy().as_layer()])
    with pytest.raises(ImageBatchError, match=r"got 4 channels"):
        keras.Sequential([keras.Input((28, 28, 4)), _policy().as_layer()])


def test_apply_in_a_tf_data_map_draws_afresh_per_call_unless_given_a_seed_tensor():
    images = np.repeat(_batch(1, np.uint8, n=1), 16, axis=0)
    policy = _policy(p_none=0.0)
    keras.utils.set_random_seed(7)  # as training scripts do: a random op's stream would restart every pass
    unseeded = tf.data.Dataset.from_tensor_slices(images).batch(8).map(lambda x: policy.apply(x))
    first, second = [[b.numpy() for b in unseeded] for _ in range(2)]
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[0], second[0])  # per batch, per epoch
    seeded = tf.data.Dataset.from_tensor_slices(images).batch(8).enumerate().map(lambda i, x: policy.apply(x, seed=i))
    for i, batch in enumerate(seeded):
        np.testing.assert_array_equal(batch.numpy(), policy.apply(images[8 * i : 8 * i + 8], seed=i).numpy())
    np.testing.assert_array_equal(policy.apply(images, seed=4).numpy(), policy.apply(images, seed=tf.constant([4, 0])).numpy())
    with pytest.raises(PolicyError, match=r"seed: an integer or a stateless seed of shape \[2\]; got shape \(3,\)"):
        policy.apply(images, seed=[1, 2, 3])


def test_the_readmes_snippet_for_using_a_found_policy_runs_as_written(tmp_path, monkeypatch):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Using a found policy in your own training") :]
    snippet = section[section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))]
    on_standard = Policy.from_dict({**_policy().to_dict(), "metadata": {"base_augmentation": "standard"}})
    on_standard.save(tmp_path / "data" / "07_model_output" / "best_policy.json")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    images = _batch(1, np.uint8, n=4, size=(28, 28)).astype(np.float32)
    assert scope["model"](images, training=True).shape == (4, 10)
    assert scope["policy"] == on_standard and scope["model"].layers[0]._base is not None  # the base runs first


def test_map_fn_in_a_tf_data_pipeline():
    images = np.repeat(_batch(1, np.uint8, n=1), 64, axis=0)
    ds = tf.data.Dataset.from_tensor_slices((images, np.zeros(64, np.int64))).batch(32)
    ds = ds.map(_policy(p_none=0.0).map_fn(seed=3))
    batches = [x.numpy() for x, _ in ds]
    assert batches[0].dtype == np.uint8 and batches[0].shape == (32, 27, 31, 1)
    assert not np.array_equal(batches[0], batches[1])  # a fresh draw per call


def test_a_parallel_map_never_hands_two_batches_the_same_draws_and_a_sequential_one_is_reproducible():
    """The layer's seed generator was read and advanced in two steps: calls running at once read the same seed."""
    images = np.repeat(_batch(1, np.uint8, n=1), 8, axis=0)

    def batches(parallel: int | None) -> list[bytes]:
        ds = tf.data.Dataset.from_tensors(images).repeat(200).map(_policy(p_none=0.0).map_fn(seed=3), num_parallel_calls=parallel)
        return [x.numpy().tobytes() for x in ds]

    assert len(set(batches(8))) == 200
    assert batches(None) == batches(None)


def test_the_layer_keeps_keras_from_compiling_it_with_xla():
    """Its image ops have no XLA kernels: Keras's jit_compile="auto" turns XLA on wherever a GPU is found."""
    model = keras.Sequential([keras.Input((27, 31, 1)), _policy().as_layer(seed=1), keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.warns(UserWarning, match="jit_compile"):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=True)
    assert model.jit_compile is False


def test_solarize_at_full_magnitude_inverts_every_pixel_and_at_zero_none():
    x = tf.constant([0.0, 0.2, 0.8, 1.0], shape=(1, 2, 2, 1))
    rng = kernels.Rng(tf.constant([0, 0], tf.int64))
    np.testing.assert_allclose(kernels.solarize(x, tf.constant([1.0]), rng).numpy().ravel(), [1.0, 0.8, 0.2, 0.0], atol=1e-6)
    np.testing.assert_array_equal(kernels.solarize(x, tf.constant([0.0]), rng).numpy(), x.numpy())


def test_trivialaugment_wides_translate_reaches_32_pixels_at_any_image_size():
    for name, axis in (("translate-x", 2), ("translate-y", 1)):
        spec = ops_lib.OPS[ops_lib.OP_INDEX[name]]
        for side in (28, 32, 224):
            shape = [1, 50, 50, 3]
            shape[axis] = side
            assert spec.param_of(spec.wide_scale(shape)) * side == pytest.approx(32.0)


def test_float_images_outside_their_value_range_are_refused_not_clipped_white():
    """Keras hands uint8 data on as float32 in [0, 255]; read as [0, 1], most pixels came back 1.0."""
    images = _batch(1, np.uint8, n=8)
    model = keras.Sequential([keras.Input((27, 31, 1)), _policy().as_layer(seed=1)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside value_range \(0, 1\); pass the range they are in"):
        model(images, training=True)
    ds = tf.data.Dataset.from_tensor_slices(images.astype(np.float32)).batch(4).map(_policy().map_fn(seed=1))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside value_range \(0, 1\)"):
        list(ds)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside value_range \(0, 1\)"):
        _policy().apply(images / 127.5 - 1.0)  # normalised images: augment before normalising
    in_range = _policy().apply(images.astype(np.float32), value_range=(0, 255)).numpy()
    assert in_range.max() <= 255 and (in_range == 255).mean() < 0.5 and not np.allclose(in_range, images)
    np.testing.assert_array_equal(model(images, training=False), images)  # inference never augments, never checks
    assert _policy().apply(images / 255.0 * (1 + 1e-4)).shape == images.shape  # rounding at the edge is not refused


def test_augmentation_refuses_anything_but_a_batch_of_one_image_size():
    images = _batch(1, np.uint8, n=8)
    with pytest.raises(ImageBatchError, match=r"takes a batch of images \(batch, height, width, channels\).*got shape \(27, 31, 1\)"):
        _policy().apply(images[0])
    with pytest.raises(ImageBatchError, match=r"batch before mapping \(ds\.batch\(n\)\.map"):
        tf.data.Dataset.from_tensor_slices(images).map(_policy().map_fn())
    unknown = tf.data.Dataset.from_generator(lambda: iter([images]), output_signature=tf.TensorSpec([None, None, None, 1], tf.uint8))
    with pytest.raises(ImageBatchError, match=r"of one height and width; got shape \(None, None, None, 1\)"):
        unknown.map(_policy().map_fn())
    with pytest.raises(ImageBatchError, match=r"grayscale \(1 channel\) or RGB \(3 channels\) images; got 4 channels"):
        _policy().apply(np.zeros((2, 8, 8, 4), np.uint8))  # RGBA: a shape mismatch deep in a colour op before


def test_a_policy_from_top_policies_runs_after_the_base_the_search_ran_it_on(tmp_path):
    path = tmp_path / "top_policies.json"
    path.write_text(json.dumps({"schema_version": 1, "base_augmentation": "crop",
                                "policies": [{"rank": 0, "policy": _policy().to_dict()}]}))  # fmt: skip
    loaded = Policy.load(path)
    assert loaded.sub_policies == _policy().sub_policies and loaded.metadata["base_augmentation"] == "crop"
    images = _batch(3, np.uint8, n=16)
    alone = Policy((), p_none=1.0, metadata=loaded.metadata).as_layer(seed=1)(images, training=True).numpy()
    assert not np.array_equal(alone, images)  # the layer runs pad + crop first, as the search did


def test_empty_policy_is_the_identity_and_the_layer_runs_the_searchs_base_first():
    images = _batch(3, np.uint8, n=16)
    empty = Policy((), p_none=1.0, metadata={"base_augmentation": "standard"})
    assert Policy.from_dict(empty.to_dict()).is_empty and empty.describe() == []
    np.testing.assert_array_equal(empty.apply(images, seed=1, with_base=False).numpy(), images)
    # apply shows what training sees, as the layer does: the base first (it skipped it, so previews understated it).
    previewed = empty.apply(images, seed=1).numpy()
    assert not np.array_equal(previewed, images) and previewed.dtype == np.uint8
    np.testing.assert_array_equal(previewed, empty.as_layer().augment(images, tf.constant([1, 0], tf.int64)).numpy())
    # It creates no variable, so it runs inside a tf.data map (a layer per call made one, which tf.function refuses).
    mapped = next(iter(tf.data.Dataset.from_tensors(images).map(lambda batch: empty.apply(batch, seed=1)))).numpy()
    np.testing.assert_array_equal(mapped, previewed)
    np.testing.assert_array_equal(empty.as_layer(seed=1, with_base=False)(images, training=True).numpy(), images)
    with_base = empty.as_layer(seed=1)(images, training=True).numpy()
    assert with_base.shape == images.shape and not np.array_equal(with_base, images)  # crop + flip still applies
    base_only = baselines.base_augment(imaging.to_unit(tf.constant(images)), baselines.base_params("none"), SEED)
    np.testing.assert_allclose(base_only.numpy(), images / 255.0, atol=1e-6)  # base "none" changes nothing


def test_baselines_keep_shape_and_change_images():
    images = imaging.to_unit(tf.constant(_batch(3, np.uint8, n=16)))
    def crop_and_flip(x, seed):
        return baselines.base_augment(x, baselines.base_params("standard"), seed)

    for fn in (crop_and_flip, baselines.randaugment, baselines.trivialaugment_wide):
        out = fn(images, SEED).numpy()
        assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
        assert np.abs(out - images.numpy()).mean() > 1e-3, fn.__name__


def test_sample_grid_has_a_row_per_sub_policy():
    images = _batch(1, np.uint8, n=4)
    fig = sample_grid(_policy(), images, max_images=4)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert len(labels) == 1 + 5 and labels[0] == "original" and labels[1].startswith("1: rotate 0.50")
    mosaic = fig.axes[0].get_images()[0].get_array()
    h, w = images.shape[1:3]
    band, gap = max(10, h // 3), max(1, w // 14)
    assert mosaic.shape[:2] == (6 * (band + h), 4 * w + 3 * gap)
    np.testing.assert_array_equal(mosaic[band : band + h, :w, 0], images[0, ..., 0])  # the originals, unchanged
    sub_rows = [mosaic[r * (band + h) + band : (r + 1) * (band + h), :w, 0] for r in range(1, 6)]
    assert any(not np.array_equal(row, images[0, ..., 0]) for row in sub_rows)  # the sub-policies change them


def test_equalize_transposes_no_int32_tensor():
    """TensorFlow's oneDNN rewrite logs an error line ("oneDNN supports DT_INT32 only on platforms with AVX-512") for
    every graph with an int32 Transpose: evaluate printed one through RandAugment's and TrivialAugment's equalize."""
    equalize = tf.function(lambda x, p: kernels.equalize(x, p, kernels.Rng(SEED)))
    graph = equalize.get_concrete_function(tf.TensorSpec([4, 12, 12, 3], tf.float32), tf.TensorSpec([4], tf.float32)).graph
    transposes = [op for op in graph.get_operations() if op.type == "Transpose"]
    assert transposes and all(op.get_attr("T") != tf.int32 for op in transposes)
