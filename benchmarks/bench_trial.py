"""Child training and whole-trial efficiency on this machine, plus the check that policy quality shows.

Run by hand: ``python benchmarks/bench_trial.py`` → ``benchmarks/results/trial.json``.
Targets (issue 4, 2 CPU cores): whole-trial efficiency ≥ 50% for the default child (useful training
and validation FLOPs / (trial wall time × measured conv rate)); fixed per-trial overhead ≤ 5% of trial
time; one default-config trial ≤ 10 s.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import dense_rate_gflops, load_fashion_subset, median, np, train_step_rate, write_results  # noqa: E402

from deepaug_pipeline.augment.policy import Policy  # noqa: E402
from deepaug_pipeline.config import IngestConfig, SearchConfig  # noqa: E402
from deepaug_pipeline.ingest import LabelledImages  # noqa: E402
from deepaug_pipeline.models import build_model  # noqa: E402
from deepaug_pipeline.models.flops import forward_flops, training_flops  # noqa: E402
from deepaug_pipeline.models.training import FitSettings, Trainer  # noqa: E402
from deepaug_pipeline.search.run import child_settings, policy_space  # noqa: E402
from deepaug_pipeline.search.trial import ChildSettings, TrialRunner  # noqa: E402

REPEATS = 3
REFERENCE_POLICIES = {
    "mild (small shifts, flips)": [[("horizontal-flip", 1.0), ("translate-x", 0.1)], [("translate-y", 0.1), ("crop", 0.1)],
                                   [("rotate", 0.2), ("horizontal-flip", 1.0)], [("shear", 0.1), ("horizontal-flip", 1.0)],
                                   [("crop", 0.2), ("translate-x", 0.1)]],
    "strong geometric": [[("translate-x", 0.3), ("horizontal-flip", 1.0)], [("translate-y", 0.3), ("crop", 0.3)],
                         [("rotate", 0.3), ("horizontal-flip", 1.0)], [("shear", 0.3), ("coarse-dropout", 0.3)],
                         [("crop", 0.4), ("translate-x", 0.2)]],
    "destructive": [[("invert", 1.0), ("elastic-transform", 1.0)], [("vertical-flip", 1.0), ("fog", 1.0)],
                    [("coarse-salt-pepper", 1.0), ("emboss", 1.0)], [("clouds", 1.0), ("rotate", 1.0)],
                    [("dropout", 1.0), ("gaussian-blur", 1.0)]],
}  # fmt: skip


def step_rate(model_name: str, shape, batch: int) -> dict:
    """Steady-state training steps (no input pipeline, no validation)."""
    model = build_model(model_name, shape, 10)
    dummy = LabelledImages(np.zeros((batch, *shape), np.uint8), np.zeros(batch, np.int64))
    rate = train_step_rate(Trainer(model, dummy, FitSettings(epochs=1, batch_size=batch)), shape, batch)
    return {"img_per_s": rate, "train_flops_per_img": training_flops(model), "gflops": rate * training_flops(model) / 1e9,
            "params": model.count_params()}  # fmt: skip


def main() -> None:
    cfg = SearchConfig()
    ingest = IngestConfig()
    splits = load_fashion_subset(ingest.train_set_size, ingest.validation_sample_size)
    rates = dense_rate_gflops()
    peak = rates["conv_gflops"]
    results: dict = {"dense_rate": rates, "default_config": {k: getattr(cfg, k) for k in ("model", "child_epochs", "child_batch_size", "opt_samples")}}
    results["steps"] = {
        name: step_rate(name, (28, 28, 1), cfg.child_batch_size) for name in ("fastcnn", "basiccnn")
    }
    for v in results["steps"].values():
        v["fraction_of_conv_rate"] = v["gflops"] / peak

    # Whole trials with the default config, and the fixed overhead from a fit of trial time against epochs.
    space = policy_space(cfg, 1)
    policy = Policy.from_pairs(REFERENCE_POLICIES["strong geometric"])
    per_epochs = {}
    for epochs in (5, 10, cfg.child_epochs):
        settings = ChildSettings(**{**child_settings(cfg, ingest).__dict__, "epochs": epochs, "last_n_epochs": min(3, epochs)})
        runner = TrialRunner(splits.search_subset, splits.seed_validation_pool, 10, settings, 42, space.op_indices())
        runner.run(policy)  # first call traces the graph (once per process)
        per_epochs[epochs] = median([runner.run(policy)["wall_seconds"] for _ in range(REPEATS)])
        if epochs == cfg.child_epochs:
            default_runner = runner
    xs = np.array(sorted(per_epochs))
    ys = np.array([per_epochs[e] for e in xs])
    slope, intercept = np.polyfit(xs, ys, 1)
    trial_s = per_epochs[cfg.child_epochs]
    model = default_runner.model
    n_train, n_val = len(splits.search_subset), ingest.validation_sample_size
    useful = cfg.opt_samples * cfg.child_epochs * (n_train * training_flops(model) + n_val * forward_flops(model))
    results["trial"] = {
        "seconds_by_epochs": {int(k): v for k, v in per_epochs.items()},
        "default_trial_seconds": trial_s,
        "fixed_overhead_seconds": float(intercept),
        "fixed_overhead_share": float(intercept / trial_s),
        "seconds_per_epoch": float(slope),
        "useful_gflop": useful / 1e9,
        "efficiency_vs_conv_rate": useful / (trial_s * peak * 1e9),
        "images_per_s_overall": cfg.child_epochs * (n_train + n_val) / trial_s,
    }
    results["targets"] = {
        "efficiency_at_least_50pct": results["trial"]["efficiency_vs_conv_rate"] >= 0.5,
        "overhead_at_most_5pct": results["trial"]["fixed_overhead_share"] <= 0.05,
        "trial_at_most_10s": trial_s <= 10,
    }

    # Does policy quality show in the default child's reward? (and in basiccnn's, for comparison)
    quality = {}
    for model_name in ("fastcnn", "basiccnn"):
        settings = ChildSettings(**{**child_settings(cfg, ingest).__dict__, "model": model_name, "model_options": {}})
        runner = TrialRunner(splits.search_subset, splits.seed_validation_pool, 10, settings, 42, space.op_indices())
        start = time.perf_counter()
        rewards = {"no augmentation": runner.run(space.no_augmentation())["reward"]}
        for label, pairs in REFERENCE_POLICIES.items():
            rewards[label] = runner.run(Policy.from_pairs(pairs))["reward"]
        quality[model_name] = {"rewards": rewards, "seconds": time.perf_counter() - start}
    results["policy_quality"] = quality
    write_results("trial", results)


if __name__ == "__main__":
    main()
