"""The DeepAugment-style Python API: same nodes, same errors, usable policy."""

from __future__ import annotations

import numpy as np
import pytest

from deepaug_pipeline import DeepAugment, Policy, api
from deepaug_pipeline.config import ConfigError
from deepaug_pipeline.ingest import DataValidationError
from deepaug_pipeline.run_log import TrialLogMismatch, read_log
from deepaug_pipeline.search.controller import SearchError
from tests.conftest import TEST_OPS, make_images

TINY = {
    "model": "fastcnn", "method": "bayesian_optimization", "train_set_size": 120, "base_augmentation": "standard",
    "noise_seeds": 2, "reevaluate_top": 2, "reevaluate_seeds": 2, "opt_last_n_epochs": 1, "opt_initial_points": 2,
    "child_epochs": 2, "child_first_train_epochs": 0, "child_batch_size": 40, "validation_sample_size": 60,
    "model_options": {"width": 4, "dense": 8},
    "reevaluate_stop_early": False,  # every re-evaluation fit runs, so the trial count below is fixed
    "ops": TEST_OPS,  # the whole space's policy graph took 15 of this test's 23 s, in its searches' traces
}  # fmt: skip


@pytest.mark.slow  # three searches and a fresh start
def test_seed_interface_returns_top_policies_and_a_usable_policy(tmp_path, monkeypatch):
    x, y = make_images(400, 4, (14, 14))
    deepaug = DeepAugment(x, y, config=TINY, workdir=tmp_path)
    top = deepaug.optimize(3)
    assert len(top) == 3 and list(top["rank"]) == [0, 1, 2]
    assert top["paired_gain"][:2].is_monotonic_decreasing and top["paired_gain"][2:].isna().all()  # 2 re-evaluated
    trials = deepaug.trials
    assert trials["stage"].tolist() == ["baseline"] * 2 + ["search"] * 3 + ["reevaluate"] * 6
    assert trials["trial_id"].dropna().tolist()[:3] == [1, 2, 3]
    policy = deepaug.best_policy()
    accepted = top[top["accepted"] == True]  # noqa: E712 - a pandas column
    assert len(policy.sub_policies) == 5 * len(accepted) and policy.metadata["verdict"] == deepaug.verdict
    assert policy.metadata["base_augmentation"] == "standard"
    policy = Policy.from_dict(top_entry(deepaug, 0))  # a policy with operations, whatever the verdict
    out = policy.apply(x[:8], seed=1)
    assert out.shape == x[:8].shape and out.dtype == np.uint8
    assert Policy.load(policy.save(tmp_path / "p.json")) == policy
    assert policy.as_layer()(x[:4].astype("float32"), training=False).shape == (4, 14, 14, 1)
    # A second call resumes: the logged trials are not run again.
    again = DeepAugment(x, y, config=TINY, workdir=tmp_path)
    again.optimize(4)
    assert again.trials["key"].tolist()[: len(trials)] == trials["key"].tolist() and "trial/4" in again.trials["key"].tolist()
    assert again.trials["reward"][: len(trials)].tolist() == trials["reward"].tolist()
    # Another config on the same workdir is refused, saying how to start afresh in this API's terms.
    changed = DeepAugment(x, y, config={**TINY, "child_epochs": 3}, workdir=tmp_path)
    with pytest.raises(TrialLogMismatch, match=r"search.child.epochs: 2 → 3.*Here: config=\{..., 'fresh_start': True\}, or another workdir"):
        changed.optimize(4)
    # A fresh start sets the log aside once: the same object's next optimize() goes on with the new log.
    fresh = DeepAugment(x, y, config={**TINY, "fresh_start": True}, workdir=tmp_path)
    from deepaug_pipeline.run_log import TrialLogBusy, _lock

    held = _lock(tmp_path / "trial_logs" / "bayesian.jsonl", "search")  # another run holds the log
    with pytest.raises(TrialLogBusy):
        fresh.optimize(1)
    held.close()
    fresh.optimize(1)  # the refused call left the fresh start standing
    archived = list((tmp_path / "trial_logs").glob("bayesian.*.jsonl"))
    assert len(archived) == 1 and "trial/4" in {t["key"] for t in read_log(archived[0])[1]}
    logged = fresh.trials["key"].tolist()
    assert "trial/1" in logged and "trial/2" not in logged
    fresh.optimize(2)
    assert list((tmp_path / "trial_logs").glob("bayesian.*.jsonl")) == archived
    assert fresh.trials["key"].tolist()[: 2] == logged[:2] and "trial/2" in fresh.trials["key"].tolist()
    # A search that does not finish leaves no results that no longer describe the trial log it went on writing.
    def stops(*args, **kwargs):
        raise SearchError("2 fit(s) did not come back from their Dask workers")

    monkeypatch.setattr(api, "run_search", stops)
    with pytest.raises(SearchError):
        again.optimize(5)
    for read in (lambda: again.verdict, lambda: again.trials, again.best_policy, again.top_policies):
        with pytest.raises(RuntimeError, match=r"no finished search: call optimize\(n\) \(it resumes from the trial log in "):
            read()


def top_entry(deepaug: DeepAugment, rank: int) -> dict:
    return deepaug.top_policies()["policies"][rank]["policy"]


def test_same_errors_as_the_pipeline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default workdir, were anything written
    x, y = make_images(100, 2, (12, 12))
    with pytest.raises(ConfigError, match="unknown parameter key 'config.child_epoch'"):
        DeepAugment(x, y, config={"child_epoch": 3})
    with pytest.raises(ConfigError, match="bad value for 'config.method'"):
        DeepAugment(x, y, config={"method": "grid"})
    with pytest.raises(DataValidationError, match="100 images but 99 labels"):
        DeepAugment(x, y[:99])
    with pytest.raises(DataValidationError, match="1 or 3 channels"):
        DeepAugment(np.zeros((100, 12, 12, 4), np.uint8), y)
    with pytest.raises(DataValidationError, match="ingest.train_set_size=1000 is larger than what exists"):
        DeepAugment(x, y)
    with pytest.raises(ConfigError, match=r"search.child.density_images=1000 exceeds the seed validation pool \(30 images"):
        DeepAugment(x, y, config={"train_set_size": 50, "reward": "density", "validation_sample_size": 1000})  # not at optimize()
    with pytest.raises(ConfigError, match="config sets search.child.epochs twice"):
        DeepAugment(x, y, config={"child_epochs": 3, "child": {"epochs": 4}})
    with pytest.raises(ConfigError, match="bad value for 'config.child': a dict"):
        DeepAugment(x, y, config={"child": None})
    with pytest.raises(ConfigError, match=r"bad value for 'config.method': \['random'\]"):
        DeepAugment(x, y, config={"method": ["random"]})  # was a TypeError (unhashable list)
    with pytest.raises(ConfigError, match=r"'config.iterations' is not a config key here: pass the number of trials to optimize\(n\)"):
        DeepAugment(x, y, config={"iterations": 50})  # optimize(20) replaced it without a word
    deepaug = DeepAugment(x, y, config={"train_set_size": 50, "validation_sample_size": 20})
    for bad in (2.7, "5", 0, True):
        with pytest.raises(ConfigError, match=rf"optimize\(iterations\): a whole number of policy trials, at least 1; got {bad!r}"):
            deepaug.optimize(bad)  # 2.7 ran 2 trials; nothing is written before the refusal
    assert list(tmp_path.iterdir()) == []
    # Values the config refuses are named as given here: DeepAugment's flat keys, the project's own nested ones.
    with pytest.raises(ConfigError, match=r"bad value for 'config.child_epochs': Input should be greater than or equal to 1"):
        DeepAugment(x, y, config={"child_epochs": 0})
    with pytest.raises(ConfigError, match=r"bad value for 'config.child.batch_size'"):
        DeepAugment(x, y, config={"child": {"batch_size": -1}})
    with pytest.raises(ConfigError, match=r"bad value for 'config.noise_seeds'"):
        DeepAugment(x, y, config={"noise_seeds": 0})
