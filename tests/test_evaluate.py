"""Evaluate: strategies, the comparison table, the report, and the pipelines end to end."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from deepaug_pipeline.augment.policy import Policy
from deepaug_pipeline.config import ConfigError, EvaluateConfig, parse_config
from deepaug_pipeline.evaluate.records import EvaluationRun
from deepaug_pipeline.evaluate.report import _comparison_frame, error_dot_plot, report_header, verdict
from deepaug_pipeline.evaluate.results import results_table
from deepaug_pipeline.evaluate.strategies import strategy_aliases, strategy_augment, strategy_labels
from deepaug_pipeline.pipelines.evaluate.nodes import summarise_evaluation
from tests.conftest import CHART_MIN_SIDE, GRID_MIN_SIDE, assert_real_png, kedro_session_run

FOUND = Policy.from_pairs([[("rotate", 0.5), ("cutout", 0.4)], [("shear", 0.3), ("crop", 0.3)]])
EMPTY = Policy((), p_none=1.0, metadata={"base_augmentation": "standard"})  # no policy beat crop + flip
LABELS = strategy_labels("standard")


def _run(strategy: str, seed_index: int, accuracy: float) -> EvaluationRun:
    """A finished run with the given test accuracy (the last point of its validation curve too)."""
    return EvaluationRun(f"{strategy}/{seed_index}", strategy, seed_index, "ok", accuracy, 1 - accuracy, 0.5,
                         {"val_accuracy": [0.5, 0.6, accuracy]}, 1.0)  # fmt: skip


@pytest.mark.parametrize("name", list(LABELS))
def test_each_strategy_keeps_shape_and_range(name):
    x = tf.random.stateless_uniform([16, 20, 20, 3], seed=[1, 2])
    out = strategy_augment(name, FOUND, EvaluateConfig())(x, (), tf.constant([3, 4], tf.int64)).numpy()
    assert out.shape == (16, 20, 20, 3) and out.min() >= 0 and out.max() <= 1
    assert np.allclose(out, x.numpy()) == (name == "none")


def test_standard_is_the_base_the_search_chose():
    x = tf.random.stateless_uniform([16, 20, 20, 3], seed=[1, 2])
    seed = tf.constant([3, 4], tf.int64)
    none_base = strategy_augment("standard", FOUND, EvaluateConfig(), base="none")(x, (), seed).numpy()
    np.testing.assert_array_equal(none_base, x.numpy())
    crop = strategy_augment("standard", FOUND, EvaluateConfig(), base="crop")(x, (), seed).numpy()
    flip = strategy_augment("standard", FOUND, EvaluateConfig(), base="standard")(x, (), seed).numpy()
    assert not np.allclose(crop, x.numpy()) and not np.allclose(crop, flip)
    assert strategy_labels("crop")["standard+found"] == "pad + crop + found policy"
    assert strategy_aliases("none", FOUND) == {"standard": "none"}
    assert strategy_aliases("none", Policy((), p_none=1.0)) == {"standard": "none", "standard+found": "none"}
    assert strategy_aliases("standard", FOUND) == {}


def test_found_strategy_needs_a_policy_and_strategies_are_validated():
    with pytest.raises(ValueError, match="needs the search's best policy"):
        strategy_augment("standard+found", None, EvaluateConfig())
    with pytest.raises(ConfigError, match=r"bad value for 'evaluate\.strategies\[0\]'"):
        parse_config(EvaluateConfig, {"strategies": ["mixup"]}, "evaluate")
    with pytest.raises(ConfigError, match="lists a strategy twice"):
        parse_config(EvaluateConfig, {"strategies": ["none", "none"]}, "evaluate")


def _final_data():
    from deepaug_pipeline.data import LabelledImages
    from tests.conftest import make_images

    train, val, test = (LabelledImages(*make_images(n, size=(16, 16), seed=n)) for n in (64, 32, 40))
    cfg = EvaluateConfig(model="fastcnn", model_options={"width": 4, "dense": 8}, epochs=2, batch_size=32, validation_size=32)
    return train, val, test, cfg


def test_one_final_graph_for_every_strategy_and_seed_with_the_results_of_a_graph_per_run():
    import keras

    from deepaug_pipeline.evaluate.final import FinalTrainer
    from deepaug_pipeline.models import build_model
    from deepaug_pipeline.models.training import FitSettings, Trainer
    from deepaug_pipeline.seeding import stream_seed

    train, val, test, cfg = _final_data()
    final = FinalTrainer(train, val, test, 4, FOUND, cfg, seed=3)
    first = final.run("standard+found", 1)
    between = [final.run(s, i) for s, i in (("none", 0), ("standard+trivialaugment", 1), ("standard", 0))]
    again = final.run("standard+found", 1)
    assert final.trainer.traces == 1  # strategies and seeds are data: one graph for the whole evaluation
    assert again.history == first.history and again.test_accuracy == first.test_accuracy
    assert again.key == "standard+found/1" and again.ok
    assert all(b.history != first.history for b in between)
    # The same numbers as a model and a graph of its own for that run, traced under that run's global seed: the
    # evaluation's graph seed (seed 0's) sets the data order, not the seed Keras set last.
    keras.utils.set_random_seed(stream_seed(3, "evaluate", 1))
    model = build_model(cfg.model, train.x.shape[1:], 4, **cfg.model_options)
    settings = FitSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer=cfg.optimizer,
                           learning_rate=cfg.learning_rate, momentum=cfg.momentum, schedule=cfg.schedule)  # fmt: skip
    own = Trainer(model, train, settings, strategy_augment("standard+found", FOUND, cfg), graph_seed=stream_seed(3, "evaluate", 0))
    history = own.fit((), stream_seed(3, "evaluate", 1), val)
    np.testing.assert_allclose(history.train_loss, first.history["train_loss"], rtol=1e-5)
    assert own.evaluate(test)[1] == pytest.approx(first.test_accuracy)
    with pytest.raises(ValueError, match="needs the search's best policy"):
        FinalTrainer(train, val, test, 4, None, cfg, seed=3).run("standard+found", 0)


def test_runs_are_logged_as_before_and_resume_as_they_were(tmp_path):
    from deepaug_pipeline.evaluate.final import run_grid
    from deepaug_pipeline.run_log import TrialLog, read_log

    cfg, aliases = EvaluateConfig(seeds=2, strategies=["none", "standard"]), {"standard": "none"}
    with TrialLog(tmp_path / "e.jsonl", {"e": 1}) as run_log:
        runs = run_grid(cfg, run_log, lambda s, i: replace(_run(s, i, 0.8 + 0.01 * i), finished_at=1.5), aliases)
    assert [(r.key, r.same_as) for r in runs] == [("none/0", None), ("standard/0", "none"), ("none/1", None), ("standard/1", "none")]
    fields = ["type", "key", "strategy", "seed_index", "status", "test_accuracy", "test_error", "test_loss", "history", "wall_seconds", "finished_at"]
    assert [list(t) for t in read_log(tmp_path / "e.jsonl")[1]] == [fields, fields]  # trained runs only, no same_as
    with TrialLog(tmp_path / "e.jsonl", {"e": 1}) as run_log:
        assert run_grid(cfg, run_log, lambda s, i: pytest.fail(f"{s}/{i} trained again"), aliases) == runs


def test_momentum_counts_in_the_evaluation_log_only_under_sgd_the_optimizer_that_reads_it(tmp_path):
    from deepaug_pipeline.config import canonical_evaluation_config
    from deepaug_pipeline.evaluate.final import run_grid
    from deepaug_pipeline.run_log import TrialLog, TrialLogMismatch

    def log_config(cfg):
        return {"seed": 3, "evaluate": cfg.result_defining()}

    # Under sgd the fingerprint holds the keys it always held, so every evaluation log written so far resumes.
    assert EvaluateConfig().result_defining() == EvaluateConfig().model_dump(exclude={"fresh_start", "strategies", "seeds", "test_size"})
    cfg = EvaluateConfig(seeds=1, strategies=["none"], optimizer="adam", learning_rate=0.001)
    old_header = {"seed": 3, "evaluate": cfg.model_dump(exclude={"fresh_start", "strategies", "seeds", "test_size"})}
    assert old_header["evaluate"]["momentum"] == 0.9  # as the version before this one recorded it
    with TrialLog(tmp_path / "e.jsonl", old_header, section="evaluate") as run_log:
        runs = run_grid(cfg, run_log, lambda s, i: replace(_run(s, i, 0.8), finished_at=1.5), {})
    moved = cfg.model_copy(update={"momentum": 0.5})  # adam reads no momentum: the run holds
    with TrialLog(tmp_path / "e.jsonl", log_config(moved), section="evaluate", canonical=canonical_evaluation_config) as run_log:
        assert run_grid(moved, run_log, lambda s, i: pytest.fail(f"{s}/{i} trained again"), {}) == runs
    sgd = EvaluateConfig(seeds=1, strategies=["none"])
    with TrialLog(tmp_path / "s.jsonl", log_config(sgd), section="evaluate", canonical=canonical_evaluation_config) as run_log:
        run_grid(sgd, run_log, lambda s, i: replace(_run(s, i, 0.8), finished_at=1.5), {})
    with pytest.raises(TrialLogMismatch, match="momentum"):
        TrialLog(tmp_path / "s.jsonl", log_config(sgd.model_copy(update={"momentum": 0.5})), section="evaluate",
                 canonical=canonical_evaluation_config)  # fmt: skip


def test_a_test_size_scores_a_stratified_sample_and_its_default_keeps_old_logs_resuming():
    from deepaug_pipeline.data import LabelledImages
    from deepaug_pipeline.evaluate.final import scoring_sample

    labels = np.repeat(np.arange(4), [400, 300, 200, 100])
    test = LabelledImages(np.arange(len(labels)).reshape(-1, 1, 1, 1), labels)
    names = ["a", "b", "c", "d"]
    sample = scoring_sample(test, names, EvaluateConfig(test_size=100), seed=3)
    assert np.bincount(sample.y).tolist() == [40, 30, 20, 10]  # each class in its share of the split
    assert (labels[sample.x.ravel()] == sample.y).all() and len(np.unique(sample.x)) == 100  # images keep their labels
    assert np.array_equal(scoring_sample(test, names, EvaluateConfig(test_size=100), seed=3).x, sample.x)  # seeded
    assert not np.array_equal(scoring_sample(test, names, EvaluateConfig(test_size=100), seed=4).x, sample.x)
    assert scoring_sample(test, names, EvaluateConfig(), seed=3) is test
    assert scoring_sample(test, names, EvaluateConfig(test_size=5000), seed=3) is test
    # A sample, unlike a split, may take every image of a class; it may not leave a class out.
    assert len(scoring_sample(test, names, EvaluateConfig(test_size=999), seed=3).y) == 999
    rare = LabelledImages(test.x[:401], labels[:401].copy())
    rare.y[-1] = 3  # class 'd' has a single test image; classes 'b' and 'c' none
    assert np.bincount(scoring_sample(rare, names, EvaluateConfig(test_size=300), seed=3).y).tolist() == [299, 0, 0, 1]
    with pytest.raises(ConfigError, match=r"evaluate.test_size=20 leaves class\(es\) 'd' out of the test sample"):
        scoring_sample(rare, names, EvaluateConfig(test_size=20), seed=3)
    # A log written before the key existed has no test_size: at its default the key stays out of the fingerprint.
    assert "test_size" not in EvaluateConfig().result_defining()
    assert EvaluateConfig(test_size=100).result_defining()["test_size"] == 100
    with pytest.raises(ConfigError, match="test_size"):
        parse_config(EvaluateConfig, {"test_size": 0}, "evaluate")


def test_comparison_chart_is_a_dot_plot_fitted_to_the_errors_and_curves_are_told_apart():
    from deepaug_pipeline.evaluate.report import learning_curves

    accs = {"none": [0.75, 0.77], "standard": [0.79, 0.80], "standard+found": [0.79, 0.81]}
    runs = [_run(s, i, a) for s, v in accs.items() for i, a in enumerate(v)]
    table = results_table(runs, list(accs))
    ax = error_dot_plot(table, runs).axes[0]
    means = [line.get_xdata()[0] for line in ax.lines if line.get_marker() == "o"]
    np.testing.assert_allclose(means, table["test_error_mean"] * 100)
    assert ax.get_xlim()[0] > 15  # fitted to 19-25 %, not from 0
    assert len({line.get_color() for line in ax.lines if line.get_marker() == "o"}) == 3
    # Rows a step apart, whatever their count: two strategies sit in the middle, not on the frame's top and bottom.
    for n in (2, 3):
        rows = error_dot_plot(table.head(n)).axes[0]
        low, high = rows.get_ylim()
        assert (0 - low, high - (n - 1)) == pytest.approx((0.6, 0.6))
    curves = learning_curves(runs, LABELS).axes[0].lines
    assert len(curves) == 3 and len({(c.get_linestyle(), c.get_marker()) for c in curves}) == 3
    dots = [line.get_color() for line in ax.lines if line.get_marker() == "o"]
    assert [c.get_color() for c in curves] == dots  # a strategy has one colour in both charts


def test_results_table_means_stds_and_error_reductions():
    accs = {"none": [0.80, 0.82], "standard": [0.85, 0.87], "standard+found": [0.90, 0.88]}
    runs = [_run(s, i, a) for s, v in accs.items() for i, a in enumerate(v)]
    table = results_table(runs, list(accs)).set_index("strategy")
    assert table.loc["none", "test_error_mean"] == pytest.approx(0.19)
    assert table.loc["standard+found", "test_accuracy_std"] == pytest.approx(np.std([0.90, 0.88], ddof=1))
    assert table.loc["standard+found", "error_reduction_vs_none"] == pytest.approx((0.19 - 0.11) / 0.19)
    assert table.loc["standard+found", "error_reduction_vs_standard"] == pytest.approx((0.14 - 0.11) / 0.14)


def test_verdict_names_the_best_and_separates_real_gaps_from_seed_noise():
    accs = {"none": [0.80, 0.81, 0.80], "standard": [0.870, 0.880, 0.875], "standard+found": [0.878, 0.872, 0.880],
            "standard+trivialaugment": [0.86]}  # fmt: skip
    runs = [_run(s, i, a) for s, v in accs.items() for i, a in enumerate(v)]
    lines = verdict(results_table(runs, list(accs)), runs)
    # TrivialAugment ran on seed 0 only: its mean is over another seed set than the others', and the line says so.
    assert lines[0] == ("Lowest mean test error: crop + flip + found policy (12.33%; the strategies finished on different "
                        "seeds, so compare them by the paired lines below).")
    vs = {line.split(":")[0]: line for line in lines[1:]}
    # Paired by seed: none − standard is -0.070, -0.070, -0.075 -> mean -0.0717, SE 0.00167, 43 SE.
    assert vs["standard (crop + flip) vs none"] == (
        "standard (crop + flip) vs none: 7.17 points lower error (43.0 standard errors over 3 paired seeds: beyond seed noise).")
    assert "beyond seed noise" in vs["crop + flip + found policy vs none"]
    assert "0.17 points lower error (0.3 standard errors over 3 paired seeds: within seed noise" in vs["crop + flip + found policy vs standard (crop + flip)"]
    assert "one paired seed, so no noise estimate" in vs["crop + flip + found policy vs crop + flip + TrivialAugment-Wide"]
    assert "one paired seed" in vs["crop + flip + TrivialAugment-Wide vs standard (crop + flip)"]
    assert len(lines) == 6
    same = [_run(s, i, a) for s, a in (("none", 0.8), ("standard+found", 0.9)) for i in range(2)]
    assert verdict(results_table(same, ["none", "standard+found"]), same)[1] == (
        "crop + flip + found policy vs none: 10.00 points lower error (the same difference on all 2 paired seeds, so no noise estimate)."
    )
    aliased_runs = [replace(r, strategy="standard+found", same_as="none") for r in same if r.strategy == "none"]
    only_none = [r for r in same if r.strategy == "none"] + aliased_runs
    aliased = verdict(results_table(only_none, ["none", "standard+found"]), only_none)
    assert aliased[1] == "crop + flip + found policy: the same runs as none, nothing to compare."
    # No policy beat the base: found reuses standard's runs, so its comparisons with the others would repeat
    # standard's; it says so once, and the other comparisons keep the lines they have without it.
    found_is_standard = [replace(r, strategy="standard+found", key=f"standard+found/{r.seed_index}", same_as="standard")
                         for r in runs if r.strategy == "standard"]  # fmt: skip
    strategies = ["none", "standard", "standard+found", "standard+trivialaugment"]
    without = [r for r in runs if r.strategy != "standard+found"]
    without_found = verdict(results_table(without, strategies[:2] + strategies[3:]), without)
    with_alias = verdict(results_table(without + found_is_standard, strategies, EMPTY), without + found_is_standard)
    assert [line for line in with_alias if "no policy found" in line] == [
        "crop + flip (no policy found): the same runs as standard (crop + flip), nothing to compare."
    ]
    assert [line for line in with_alias if "no policy found" not in line] == without_found


def test_a_strategy_reusing_one_left_out_of_the_list_shows_its_runs_as_its_own():
    """strategies [none, standard+found] and no policy found: found's runs are standard's, which is trained but not
    listed. Its curve is drawn (it was skipped as an alias) and its row names no missing strategy by its key."""
    from deepaug_pipeline.evaluate.report import learning_curves

    runs = [_run("none", i, 0.8) for i in range(2)]
    runs += [replace(_run("standard", i, 0.85), strategy="standard+found", key=f"standard+found/{i}", same_as="standard")
             for i in range(2)]  # fmt: skip
    table = results_table(runs, ["none", "standard+found"], EMPTY)
    assert _comparison_frame(table)["strategy"].tolist() == ["none", "crop + flip (no policy found)"]
    figure = learning_curves(runs, dict(zip(table["strategy"], table["label"])))
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["none", "crop + flip (no policy found)"]
    figure.clf()
    # Listed, standard draws the line and found does not repeat it.
    runs += [_run("standard", i, 0.85) for i in range(2)]
    table = results_table(runs, ["none", "standard", "standard+found"], EMPTY)
    figure = learning_curves(runs, dict(zip(table["strategy"], table["label"])))
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["none", "standard (crop + flip)"]
    assert _comparison_frame(table)["strategy"].tolist()[2] == "crop + flip (no policy found) (= standard (crop + flip), not trained twice)"


def test_the_lowest_mean_says_when_a_failed_run_left_the_means_over_different_seeds():
    """found failed on its hardest seed: its mean over the other two looks best, though paired it is not."""
    accs = {"standard": [0.85, 0.86, 0.80], "standard+found": [0.855, 0.865, 0.70]}
    runs = [_run(s, i, a) for s, v in accs.items() for i, a in enumerate(v)]
    runs[-1] = replace(runs[-1], status="failed")
    lines = verdict(results_table(runs, list(accs)), runs)
    assert lines[0] == ("Lowest mean test error: crop + flip + found policy (14.00%; the strategies finished on different "
                        "seeds, so compare them by the paired lines below).")
    everyone = [r for r in runs if r.seed_index < 2]
    assert verdict(results_table(everyone, list(accs)), everyone)[0] == "Lowest mean test error: crop + flip + found policy (14.00%)."


def test_with_no_base_each_comparison_is_said_once_under_the_runs_it_is():
    """Base none: standard is none's runs, so "found vs standard" and "found vs none" are one comparison (it was
    printed twice); with no policy either, found is none's runs too, and its comparisons are RandAugment's."""
    accs = {"none": [0.80, 0.81, 0.80], "standard+found": [0.85, 0.86, 0.857], "standard+randaugment": [0.84, 0.85, 0.845]}
    own = [_run(s, i, a) for s, v in accs.items() for i, a in enumerate(v)]
    alias = [replace(r, strategy="standard", key=f"standard/{r.seed_index}", same_as="none") for r in own if r.strategy == "none"]
    strategies = ["none", "standard", "standard+found", "standard+randaugment"]
    on_none = Policy(FOUND.sub_policies, metadata={"base_augmentation": "none"})
    lines = verdict(results_table(own + alias, strategies, on_none), own + alias)
    assert [line.split(":")[0] for line in lines[1:]] == [
        "standard (none)", "none + found policy vs standard (none)", "none + RandAugment vs standard (none)",
        "none + found policy vs none + RandAugment"]  # fmt: skip
    assert lines[1] == "standard (none): the same runs as none, nothing to compare."

    nothing = [r for r in own if r.strategy != "standard+found"]
    nothing += [replace(r, strategy="standard+found", key=f"standard+found/{r.seed_index}", same_as="standard") for r in alias]
    nothing += alias
    empty_on_none = Policy((), p_none=1.0, metadata={"base_augmentation": "none"})
    lines = verdict(results_table(nothing, strategies, empty_on_none), nothing)
    assert lines[1:] == [
        "standard (none): the same runs as none, nothing to compare.",
        "none (no policy found): the same runs as standard (none), nothing to compare.",
        "none + RandAugment vs standard (none): 4.17 points lower error (25.0 standard errors over 3 paired seeds: "
        "beyond seed noise).",
    ]


def test_gaps_are_paired_by_seed_and_two_seeds_are_too_few_to_call_one():
    # The seeds spread the error by 10 points; found is 0.4-0.6 points better on every one of them. Unpaired, the
    # standard error of the difference of the means is about 4 points; paired, 0.06.
    accs = {"standard": [0.80, 0.85, 0.90], "standard+found": [0.805, 0.856, 0.904]}
    runs = [_run(s, i, a) for s, v in accs.items() for i, a in enumerate(v)]
    assert verdict(results_table(runs, list(accs)), runs)[1] == (
        "crop + flip + found policy vs standard (crop + flip): 0.50 points lower error "
        "(8.7 standard errors over 3 paired seeds: beyond seed noise).")
    two = [r for r in runs if r.seed_index < 2]
    assert verdict(results_table(two, list(accs)), two)[1] == (
        "crop + flip + found policy vs standard (crop + flip): 0.55 points lower error (11.0 standard errors over 2 "
        "paired seeds; too few seeds to call it beyond noise, set evaluate.seeds to 3 or more).")
    within = [replace(r, test_accuracy=0.85 + 0.01 * (-1) ** r.seed_index, test_error=0.15 - 0.01 * (-1) ** r.seed_index)
              if r.strategy == "standard+found" else r for r in two]  # fmt: skip
    assert verdict(results_table(within, list(accs)), within)[1].endswith("2.50 points lower error (0.7 standard errors over 2 paired seeds: within seed noise).")
    # A seed only one side finished is left out of the pairing.
    failed = [replace(r, status="failed") if (r.strategy, r.seed_index) == ("standard", 2) else r for r in runs]
    assert "over 2 paired seeds" in verdict(results_table(failed, list(accs)), failed)[2]


def test_no_policy_found_is_named_so_and_never_credited_with_a_gain():
    runs = [_run(s, i, a) for s, v in {"none": [0.80, 0.81, 0.80], "standard+randaugment": [0.84, 0.85, 0.845]}.items()
            for i, a in enumerate(v)]  # fmt: skip
    # Without `standard` in the list, found (empty) still trains as crop + flip and is compared as what it is.
    runs += [replace(r, strategy="standard+found", key=f"standard+found/{i}", same_as="standard")
             for i, r in enumerate(_run("standard", i, a) for i, a in enumerate([0.87, 0.88, 0.875]))]  # fmt: skip
    strategies = ["none", "standard+found", "standard+randaugment"]
    table = results_table(runs, strategies, EMPTY)
    lines = verdict(table, runs)
    assert lines[0] == "Lowest mean test error: crop + flip (no policy found) (12.50%)."
    assert not [line for line in lines if "found policy" in line]
    assert "crop + flip (no policy found) vs crop + flip + RandAugment: 3.00 points lower error" in " ".join(lines)
    # Listed beside standard, the alias is standard: the lowest error is named once, and exact ties say so.
    standard = [_run("standard", i, a) for i, a in enumerate([0.87, 0.88, 0.875])]
    both = runs + standard
    assert verdict(results_table(both, ["standard+found", "standard", "none"], EMPTY), both)[0] == (
        "Lowest mean test error: standard (crop + flip) (12.50%).")
    tie = [r for r in both if r.strategy in ("standard", "none")] + [replace(r, strategy="standard+randaugment") for r in standard]
    assert verdict(results_table(tie, ["none", "standard", "standard+randaugment"]), tie)[0] == (
        "Lowest mean test error: standard (crop + flip) and crop + flip + RandAugment (12.50%, tied).")
    assert "the same error" in verdict(results_table(tie, ["none", "standard", "standard+randaugment"]), tie)[2]


def test_one_seed_shows_no_spread_and_failed_runs_are_named():
    runs = [_run("none", 0, 0.80), _run("standard", 0, 0.85)]
    runs += [replace(_run("standard+found", i, 0.5), status="failed") for i in range(2)]
    runs += [_run("standard+randaugment", 0, 0.84), replace(_run("standard+randaugment", 1, 0.1), status="failed")]
    strategies = ["none", "standard", "standard+found", "standard+randaugment"]
    table = results_table(runs, strategies, FOUND)
    assert table["test_accuracy_std"].isna().all()  # one finished run each: no estimate, not a spread of 0
    assert _comparison_frame(table)["test accuracy (%)"].tolist() == ["80.00 (one seed)", "85.00 (one seed)", "–", "84.00 (one seed)"]
    assert not [c for c in error_dot_plot(table, runs).axes[0].collections if len(c.get_segments())]  # no error bars
    lines = verdict(table, runs)
    assert "crop + flip + found policy: 2 of 2 runs failed (a loss that was not finite); it has no figures." in lines
    assert ("crop + flip + RandAugment: 1 of 2 runs failed (a loss that was not finite); its figures are over the 1 "
            "that finished.") in lines
    _, metrics = summarise_evaluation(runs, FOUND.to_dict(), {"strategies": strategies})
    assert "none.test_accuracy_mean" in metrics and not [k for k in metrics if k.endswith("_std")]
    # An empty found policy listed without standard: its runs are standard's, and their failures are still named.
    failed_standard = [replace(_run("standard", i, 0.5), status="failed", strategy="standard+found", same_as="standard")
                       for i in range(2)]  # fmt: skip
    lines = verdict(results_table(runs[:1] + failed_standard, ["none", "standard+found"], EMPTY), runs[:1] + failed_standard)
    assert "crop + flip (no policy found): 2 of 2 runs failed (a loss that was not finite); it has no figures." in lines


def test_the_report_header_counts_the_images_the_final_models_trained_on():
    """TRAIN less the validation sample, whatever train_size asks beyond it (final_splits then takes all of it)."""
    summary = {"image_shape": [28, 28, 1], "class_names": [str(i) for i in range(10)],
               "sizes": {"search_subset": 2000, "seed_validation_pool": 58000, "test": 10000}}  # fmt: skip
    evaluate = {"model": "wrn_10_1", "epochs": 2, "seeds": 2, "validation_size": 1000}
    for train_size, images in ((4000, 4000), (None, 59000), (80000, 59000)):
        lines = report_header(summary, {"evaluate": {**evaluate, "train_size": train_size}}, None, None, "today")
        assert lines[2].startswith(f"Final model: wrn_10_1, {images} training images, 2 epochs")
        assert lines[3].startswith(f"Warning: this is a smoke-test configuration (2 epochs, {images} training images)")
    small = {**summary, "sizes": {"search_subset": 400, "seed_validation_pool": 800, "test": 10000}}
    lines = report_header(small, {"evaluate": {**evaluate, "epochs": 200, "train_size": 4000}}, None, None, "today")
    assert lines[2].startswith("Final model: wrn_10_1, 200 training images, 200 epochs")
    assert lines[3].startswith("Warning: this is a smoke-test configuration (200 epochs, 200 training images)")
    lines = report_header(summary, {"evaluate": {**evaluate, "epochs": 200, "train_size": 4000}}, None, None, "today")
    assert len(lines) == 3  # long enough, on enough images: no warning
    unsized = report_header({"class_names": ["a", "b"]}, {"evaluate": {**evaluate, "train_size": 4000}}, None, None, "today")
    assert unsized[2].startswith("Final model: wrn_10_1, 4000 training images")  # a summary without sizes: as asked


def test_the_report_names_what_the_op_screen_dropped_in_its_verdict():
    import matplotlib.pyplot as plt

    from deepaug_pipeline.evaluate.report import build_report

    runs = [_run(s, i, 0.8 + 0.01 * i) for s in ("none", "standard") for i in range(2)]
    table = results_table(runs, ["none", "standard"])
    figures = {name: plt.figure() for name in ("results", "curves", "policy_grid", "convergence")}
    for screened, line in ((["invert", "solarize"], "Search: the op screen dropped invert, solarize before the optimiser started."),
                           (None, None)):  # fmt: skip
        policy = Policy((), p_none=1.0, metadata={"verdict": "no policy beat crop + flip", "screened_out": screened})
        md, page = build_report(table, runs, policy, figures, {})
        verdict_section = md.split("## Verdict")[1].split("##")[0]
        assert ("op screen" in verdict_section) == (line is not None)
        if line:
            assert f"- {line}" in verdict_section and line in page
        assert "op 1" not in md and "op 1" not in page  # an empty policy has no table of operations, not an empty one
    md, page = build_report(table, runs, FOUND, figures, {})
    assert md.count("| rotate") == 1 and "<td>rotate</td>" in page


def test_evaluate_without_search_outputs_says_to_run_the_search(project):
    # In this process: the command line prints a ConfigError's text as it is (tests/test_search.py, the typo test).
    with pytest.raises(ConfigError, match=r"^missing search outputs: .*Run the search first: `kedro run --pipelines=search`") as missing:
        kedro_session_run(project, "evaluate")
    assert f"best_policy ({project}/data/07_model_output/best_policy.json)" in str(missing.value)


@pytest.mark.slow
def test_search_then_evaluate_writes_the_report(ingested_project, monkeypatch):
    project = ingested_project
    kedro_session_run(project, "search")
    # Search parameters given to evaluate change nothing the policy was found under, nor what the report says of it.
    kedro_session_run(project, "evaluate", params={"search": {"child": {"epochs": 7}}})
    reporting = project / "data" / "08_reporting"
    table = pd.read_csv(reporting / "evaluation.csv")
    assert table["strategy"].tolist() == list(LABELS) and (table["runs"] == 2).all()
    np.testing.assert_allclose(table["test_error_mean"], 1 - table["test_accuracy_mean"])
    best = Policy.load(project / "data" / "07_model_output" / "best_policy.json")
    same_as = strategy_aliases("standard", best)
    labels = strategy_labels("standard", best.is_empty)  # an empty policy is labelled as the base alone
    md = (reporting / "report.md").read_text()
    for strategy, label in labels.items():
        if strategy in same_as:
            label += f" (= {labels[same_as[strategy]]}, not trained twice)"
        assert re.search(rf"^\| {re.escape(label)} +\| 2 +\| \d+\.\d\d ± \d+\.\d\d +\|", md, re.M), label
    # The header, then the verdict in words, then the table.
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("deepaug_pipeline")
    run_of = {r.info.run_name: r for r in client.search_runs([exp.experiment_id]) if r.info.run_name in ("search", "evaluate")}
    search_id, evaluate_id = run_of["search"].info.run_id, run_of["evaluate"].info.run_id
    # Two sessions in one process (as in a notebook): the second run is a run of its own, not nested in the first.
    assert all("mlflow.parentRunId" not in run.data.tags and run.info.status == "FINISHED" for run in run_of.values())
    lines = md.splitlines()
    assert lines[2].startswith("Dataset: 10 classes (T-shirt/top, Trouser, Pullover, Dress, …), 28×28×1 images;")
    assert f"MLflow runs: search {search_id}, evaluate {evaluate_id}." in lines[3]
    assert lines[4].startswith("Final model: wrn_10_1, 300 training images, 2 epochs")
    assert lines[4].rstrip().endswith("scored on a stratified sample of 1000 of the 10000 untouched test images.")
    assert lines[5].startswith("Warning: this is a smoke-test configuration (2 epochs, 300 training images).")
    assert run_of["evaluate"].data.tags["search_run_id"] == search_id
    assert md.index("## Verdict") < md.index("- Lowest mean test error: ") < md.index("## Comparison")
    assert f"- Search: {best.metadata['verdict']}." in md and "- standard (crop + flip) vs none: " in md
    if best.is_empty:  # the tiny search found nothing beyond noise: standard + found reuses the standard runs
        assert "- crop + flip (no policy found): the same runs as standard (crop + flip), nothing to compare." in md
        row = table.set_index("strategy")
        assert row.loc["standard+found", "test_accuracy_mean"] == row.loc["standard", "test_accuracy_mean"]
    for png in ("evaluation_results.png", "learning_curves.png", "best_policy_grid.png", "convergence.png"):
        assert f"]({png})" in md
        assert_real_png(reporting / png, min_side=GRID_MIN_SIDE if png == "best_policy_grid.png" else CHART_MIN_SIDE)
    config = json.loads(md.split("## Configuration")[1].split("```json")[1].split("```")[0])
    assert config["search"]["child"]["epochs"] == 2 and config["search"]["base_augmentation"] == "standard"  # conf/test
    page = (reporting / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "src='http" not in page and "tensorflow" in page
    assert "crop + flip + TrivialAugment-Wide" in page

    runs = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == "evaluate"]
    assert len(runs) == 1
    # Each (strategy, seed) is a nested run under the same metric names, so MLflow's charts compare strategies.
    nested = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("mlflow.parentRunId") == evaluate_id]
    assert sorted(r.info.run_name for r in nested) == sorted(f"{s}-s{i}" for s in LABELS for i in range(2))
    for strategy, row in table.set_index("strategy").iterrows():
        accs = [r.data.metrics["test_accuracy"] for r in nested if r.data.tags["strategy"] == strategy]
        assert np.mean(accs) == pytest.approx(row["test_accuracy_mean"])
    assert all(len(client.get_metric_history(r.info.run_id, "val_accuracy")) == 2 for r in nested)  # per epoch
    metrics = runs[0].data.metrics
    assert metrics["evaluation_metrics.standard_plus_found.test_accuracy_mean"] == pytest.approx(table.set_index("strategy").loc["standard+found", "test_accuracy_mean"])
    assert {"report.html", "report.md", "evaluation.csv"} <= {a.path for a in client.list_artifacts(runs[0].info.run_id)}

    # Again: every run resumes from the evaluation log, and no final model is even built (cfg.seeds WRN-28-10s on a GPU).
    def no_model(*args, **kwargs):
        raise AssertionError("a fully resumed evaluation built its final models")

    monkeypatch.setattr("deepaug_pipeline.evaluate.final.FinalTrainer.__init__", no_model)
    kedro_session_run(project, "evaluate")
    pd.testing.assert_frame_equal(pd.read_csv(reporting / "evaluation.csv"), table)

    # A search on a search subset of another size (as `--env final_regime` makes): the final models still draw from
    # TRAIN as it was, so every run that does not depend on the found policy carries over, results and all.
    monkeypatch.undo()
    kedro_session_run(project, "search", params={"ingest": {"train_set_size": 300}, "search": {"fresh_start": True}})
    from deepaug_pipeline.evaluate.final import FinalTrainer

    trained, run = [], FinalTrainer.run

    def recorded(self, strategy, seed_index):
        trained.append(strategy)
        return run(self, strategy, seed_index)

    monkeypatch.setattr(FinalTrainer, "run", recorded)
    kedro_session_run(project, "evaluate")
    assert set(trained) <= {"standard+found"}  # nothing else trains again (nothing at all if the policy is empty)
    kept = [s for s in LABELS if s != "standard+found"]
    again = pd.read_csv(reporting / "evaluation.csv").set_index("strategy")
    pd.testing.assert_frame_equal(again.loc[kept], table.set_index("strategy").loc[kept])


def test_a_new_found_policy_retrains_only_the_runs_that_depend_on_it(tmp_path):
    """A search that found another policy: none, standard, RandAugment and TrivialAugment runs carry over to the new
    evaluation log (the old one is set aside whole); another base keeps only none; anything else is refused."""
    from deepaug_pipeline.evaluate.final import run_grid
    from deepaug_pipeline.evaluate.strategies import policy_identity, reusable_runs
    from deepaug_pipeline.run_log import TrialLog, TrialLogMismatch, read_log

    cfg = EvaluateConfig(seeds=2)
    trained: list[tuple[str, int]] = []

    def train_one(strategy, seed_index):
        trained.append((strategy, seed_index))
        accuracy = 0.8 + 0.001 * len(trained)
        return EvaluationRun(f"{strategy}/{seed_index}", strategy, seed_index, "ok", accuracy, 1 - accuracy, 0.5, {}, 1.0)

    def evaluate(policy, seed=1, fresh_start=False):
        config = {"seed": seed, "evaluate": cfg.result_defining(), "found_policy": policy_identity(policy), "data": {"content": "c"}}
        trained.clear()
        with TrialLog(tmp_path / "evaluate.jsonl", config, fresh_start, "evaluate", reusable=reusable_runs) as run_log:
            return run_grid(cfg, run_log, train_one), run_log

    first, _ = evaluate(FOUND)
    assert len(trained) == 10
    other = Policy.from_pairs([[("invert", 0.5)]])
    second, run_log = evaluate(other)
    assert trained == [("standard+found", 0), ("standard+found", 1)]
    kept = {r.key: r.test_accuracy for r in first if r.strategy != "standard+found"}
    assert {r.key: r.test_accuracy for r in second if r.strategy != "standard+found"} == kept
    assert len(read_log(run_log.archived)[1]) == 10  # the previous log, set aside whole
    assert {t["carried_from"] for t in read_log(run_log.path)[1] if t["strategy"] != "standard+found"} == {run_log.archived.name}
    evaluate(Policy(other.sub_policies, metadata={"base_augmentation": "crop"}))
    assert sorted({s for s, _ in trained}) == ["standard", "standard+found", "standard+randaugment", "standard+trivialaugment"]
    with pytest.raises(TrialLogMismatch, match=r"seed: 1 → 2"):
        evaluate(other, seed=2)
    evaluate(other, fresh_start=True)
    assert len(trained) == 10
