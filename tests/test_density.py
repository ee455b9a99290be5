"""The density reward (search.reward: density): policies scored on the base's trained children, no retraining."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepaug_pipeline.augment.policy import Policy
from deepaug_pipeline.config import ConfigError, SearchConfig, parse_config, validate_params
from deepaug_pipeline.data import LabelledImages, data_fingerprint
from deepaug_pipeline.ingest.sources import load_idx
from deepaug_pipeline.run_log import TrialLog, TrialLogMismatch, TrialLogStore, children_dir, read_log
from deepaug_pipeline.search import results
from deepaug_pipeline.search.controller import SearchError, SearchLoop
from deepaug_pipeline.search.executors import LocalExecutor, RunnerSpec
from deepaug_pipeline.search.records import FitRequest, TrainedChild
from deepaug_pipeline.search.run import log_config, policy_space, run_search
from deepaug_pipeline.search.trial import TrialRunner
from tests.conftest import RAW_FASHION, TEST_OPS, kedro_session_run, search_params

CHILD = dict(model="fastcnn", model_options={"width": 8, "dense": 16}, epochs=4, batch_size=50, last_n_epochs=1,
             validation_sample_size=400, density_images=300)  # fmt: skip
TINY = dict(
    reward="density", iterations=6, opt_initial_points=3, base_augmentation="standard", noise_seeds=2,
    reevaluate_top=1, reevaluate_seeds=2, reevaluate_stop_early=False, child=CHILD, track_sample_grids=False,
    ops=TEST_OPS,  # with the whole space's training and scoring graphs the tests below took 13 s more
)  # fmt: skip


def tiny(child: dict | None = None, **search) -> SearchConfig:
    """TINY with ``search`` keys and ``child`` keys changed."""
    return SearchConfig(**{**TINY, **search, "child": {**CHILD, **(child or {})}})
SUMMARY = {"image_shape": [28, 28, 1], "n_classes": 10, "sizes": {}}


@pytest.fixture(scope="module")
def fashion() -> tuple[LabelledImages, LabelledImages]:
    """Real Fashion-MNIST: a 400-image search subset and a 1000-image validation pool."""
    train, _ = load_idx(RAW_FASHION)
    idx = np.random.default_rng(0).permutation(len(train))[:1400]
    x, y = train.x[idx][..., None], train.y[idx]
    return LabelledImages(x[:400], y[:400]), LabelledImages(x[400:], y[400:])


def _search(tmp_path: Path, fashion, child: dict | None = None, **search):
    subset, pool = fashion
    return run_search(subset, pool, SUMMARY, TrialLogStore(tmp_path), tiny(child, **search), seed=3)


@pytest.mark.slow
def test_children_are_trained_once_and_every_trial_only_scores_them(tmp_path, fashion):
    subset, pool = fashion
    cfg = tiny({"epochs": 2})  # what is counted here does not need children that learned much
    spec = RunnerSpec(cfg.child, 10, 3, policy_space(cfg, 1).op_indices())
    executor = LocalExecutor(subset, pool, spec)
    trainer = executor.runner.trainer
    fits = []
    real_fit = trainer.fit
    trainer.fit = lambda *a, **k: fits.append(a) or real_fit(*a, **k)  # counts the real fits
    config = log_config(cfg, 3, SUMMARY, data_fingerprint(subset, pool))
    with TrialLog(tmp_path / "d.jsonl", config) as trial_log:
        result = SearchLoop(policy_space(cfg, 1), cfg, 3, trial_log, executor).run()

    trials = result.search_trials
    assert len(trials) == 6 and all(t.ok for t in trials)
    # Training: the base's 2 children, then the re-evaluation (top 1 and the base, 2 fresh seeds each); no trial.
    assert len(fits) == 2 + 2 * 2
    assert trainer.traces == 1 and trainer.scoring_traces == 1  # policies are data: nothing retraces
    reference = next(r for r in result.records if r.stage == "reference")
    for t in trials:
        assert set(t.history) == {"density_accuracy", "density_loss"} and len(t.history["density_accuracy"]) == 2
        assert t.reward == pytest.approx(np.mean(t.history["density_accuracy"]))
        diffs = np.subtract(t.history["density_accuracy"], reference.history["density_accuracy"])
        assert t.gain == pytest.approx(diffs.mean())
    assert sorted(p.name for p in children_dir(trial_log.path).iterdir()) == ["baseline-standard-s0.npz", "baseline-standard-s1.npz"]
    # The re-evaluation retrains the best density trial, so the verdict is a retrained, paired one.
    best = max(trials, key=lambda t: t.reward)
    assert result.reevaluated[0].trial_id == best.trial_id
    assert results.best_combined_policy(result, 5)["metadata"]["reward"] == "density"
    # The plot's reference is the base alone on its children, not the base's retrained rewards (another scale).
    ax = results.convergence_figure({"bayesian": results.trials_table(result)}).axes[0]
    assert ax.get_ylabel().startswith("density reward")
    reference = [line for line in ax.get_lines() if "alone on its trained children" in line.get_label()]
    assert len(reference) == 1 and reference[0].get_ydata()[0] == pytest.approx(next(r for r in result.records if r.stage == "reference").reward)
    assert not ax.patches  # no noise band of retrained rewards


@pytest.mark.slow
def test_a_destructive_policy_scores_below_the_base_alone_on_real_images(fashion):
    subset, pool = fashion
    runner = TrialRunner(subset, pool, 10, tiny({"epochs": 8}).child, seed=3)
    trained = runner.run(FitRequest.baseline("standard", 0, Policy((), p_none=1.0).to_dict(), keep_weights=True))
    assert trained.status == "ok" and trained.reward > 0.5
    children = (TrainedChild(0, trained.weights),)

    def score(policy: Policy) -> float:
        request = FitRequest.search(1, "standard", policy.to_dict(), []).scoring(children)
        outcome = runner.run(request)
        assert outcome.status == "ok", outcome.reason
        return outcome.reward

    destructive = Policy.from_pairs([[("invert", 1.0), ("vertical-flip", 0.5)]], p_none=0.0)
    base_alone = Policy(destructive.sub_policies, p_none=1.0)  # leaves every image to the base
    identity = score(base_alone)
    assert score(destructive) < identity - 0.2
    assert abs(score(Policy.from_pairs([[("brightness", 0.1), ("identity", 0.0)]], p_none=0.0)) - identity) < 0.1
    assert score(base_alone) == identity  # common random numbers: the same draws every time
    assert runner.trainer.scoring_traces == 1


@pytest.mark.slow
def test_the_op_screen_scores_each_op_alone_on_the_real_children_and_pairs_it_with_the_base(tmp_path, fashion, caplog):
    with caplog.at_level(logging.WARNING, logger="deepaug_pipeline.search.run"):
        result = _search(tmp_path, fashion, screen_ops=True, ops=["identity", "invert", "brightness"], iterations=3)
    assert tiny(screen_ops=True).density_screen_warning in caplog.text
    reference = next(r for r in result.records if r.key == "reference/density")
    screens = {r.key: r for r in result.records if r.stage == "screen"}
    assert sorted(screens) == ["screen/brightness/0.25", "screen/brightness/0.75", "screen/invert/0.25", "screen/invert/0.75"]
    for r in screens.values():  # scored on the same children as every trial, paired child by child
        diffs = np.subtract(r.history["density_accuracy"], reference.history["density_accuracy"])
        assert r.ok and r.gain == pytest.approx(diffs.mean()) and r.wall_seconds < 30
    # a model that never saw inverted images: inverting 3 images in 4 costs far more than inverting 1 in 4
    assert screens["screen/invert/0.75"].gain < screens["screen/invert/0.25"].gain < 0
    assert "invert" in result.screened_out and "brightness" not in result.screened_out
    assert all(o.op != "invert" for t in result.search_trials for s in Policy.from_dict(t.policy).sub_policies for o in s.operations)


def test_density_images_cover_every_class_when_the_pool_is_sorted_by_class(fashion):
    subset, pool = fashion
    order = np.argsort(pool.y, kind="stable")  # an image folder is read class by class
    by_class = LabelledImages(pool.x[order], pool.y[order])
    runner = TrialRunner(subset, by_class, 10, tiny({"density_images": 200}).child, seed=3)
    held_out = runner.density_images(0)
    assert len(held_out) == 200 and len(np.unique(held_out.y)) == 10
    assert np.array_equal(runner.density_images(0).y, held_out.y)  # the same images for every policy


def test_density_config_is_fingerprinted_and_checked_before_work(tmp_path, fashion):
    subset, pool = fashion
    config = lambda cfg: log_config(cfg, 3, SUMMARY, data_fingerprint(subset, pool))  # noqa: E731
    with TrialLog(tmp_path / "d.jsonl", config(SearchConfig(**TINY))) as written:
        written.append({"key": "baseline/standard/s0", "stage": "baseline"})
    with pytest.raises(TrialLogMismatch, match="search.child.density_draws: 2 → 4"):
        TrialLog(tmp_path / "d.jsonl", config(tiny({"density_draws": 4})))
    with pytest.raises(ConfigError, match="child.density_images=5000 exceeds child.validation_sample_size=400"):
        validate_params({"search": {"reward": "density", "child": {"validation_sample_size": 400, "density_images": 5000}}})
    retrain = SearchConfig().result_defining()
    assert "density_draws" not in retrain["child"] and "reward" not in retrain  # logs from before the density reward resume
    assert SearchConfig(reward="density").result_defining()["child"]["density_draws"] == 2
    assert SearchConfig(reward="density").n_iterations == 200 and SearchConfig().n_iterations == 20
    assert SearchConfig(reward="density").trial_log_name == "bayesian-density"
    with pytest.raises(ConfigError, match="search.reward"):
        parse_config(SearchConfig, {"reward": "densty"}, "search")


@pytest.mark.slow
def test_missing_children_are_named_and_fresh_start_archives_them_with_the_log(tmp_path, fashion):
    child = {"epochs": 2}  # what is checked here is which children are read, not what they learned
    first = _search(tmp_path, fashion, child)
    log_path = Path(first.log_path)
    weights = children_dir(log_path) / "baseline-standard-s1.npz"
    weights.unlink()
    with pytest.raises(SearchError, match=r"cannot be read from .*bayesian-density.children \(FileNotFoundError.*move the trial log"):
        _search(tmp_path, fashion, child, iterations=7)
    weights.write_bytes(b"PK\x03\x04 cut short")  # a file a machine crash left half-written
    with pytest.raises(SearchError, match=r"cannot be read from .*bayesian-density.children \(BadZipFile"):
        _search(tmp_path, fashion, child, iterations=7)
    assert len(read_log(log_path)[1]) == len(first.records)  # nothing re-run or lost

    again = _search(tmp_path, fashion, {**child, "density_draws": 3}, fresh_start=True)
    archived = sorted(tmp_path.glob("bayesian-density.*.children"))
    assert len(archived) == 1 and (archived[0] / "baseline-standard-s0.npz").exists()
    assert (children_dir(log_path) / "baseline-standard-s1.npz").exists() and again.reward == "density"


@pytest.mark.slow
def test_kill_9_under_density_loses_at_most_the_trial_in_flight(ingested_project):
    project = ingested_project
    log_path = project / "data" / "07_model_output" / "trial_logs" / "bayesian-density.jsonl"
    # 15 trials: the kill lands after the 5th, with ten more (seconds) left for this loop to see it before they end.
    params = {"reward": "density", "iterations": 15, "child": {"density_images": 100}, "track_sample_grids": False}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kedro", "run", "--pipelines=search", "--env=test", search_params(**params)], cwd=project,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline:
        if log_path.exists() and sum(t["stage"] == "search" for t in read_log(log_path)[1]) >= 5:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_log(log_path)[1]
    expected = 2 + 1 + 15 + 2 * (1 + 2)  # base children, density reference, trials, re-evaluation
    assert 5 <= sum(t["stage"] == "search" for t in before) < 15, "killed during the density trials"

    kedro_session_run(project, "search", params={"search": params})
    after = read_log(log_path)[1]
    keys = [t["key"] for t in after]
    assert len(keys) == expected and len(set(keys)) == expected
    assert after[: len(before)] == before  # the children were not retrained, nothing logged was re-run
