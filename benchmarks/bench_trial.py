"""Child training and whole-trial efficiency on this machine, plus the check that policy quality shows.

Run by hand: ``python benchmarks/bench_trial.py`` → ``benchmarks/results/trial.json``.
Targets (issues 4 and 15, 2 CPU cores): whole-fit efficiency ≥ 50% for the default child (useful training and
validation FLOPs / (fit wall time × measured conv rate)); fixed per-fit overhead ≤ 5% of the fit's time.
Also where a density-reward trial's time goes: scoring on the children, the optimiser's tell at 200 trials, and
the MLflow child run with its sample grid. Whether policy quality shows in the child's reward is measured by
bench_child_regime.py.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from skopt import Optimizer

sys.path.insert(0, str(Path(__file__).parent))
from common import dense_rate_gflops, load_fashion_subset, median, np, timed, train_step_rate, write_results  # noqa: E402

from deepaug_pipeline.augment.policy import Policy  # noqa: E402
from deepaug_pipeline.config import IngestConfig, SearchConfig  # noqa: E402
from deepaug_pipeline.data import LabelledImages  # noqa: E402
from deepaug_pipeline.models import build_model  # noqa: E402
from deepaug_pipeline.models.flops import forward_flops, training_flops  # noqa: E402
from deepaug_pipeline.models.training import FitSettings, Trainer  # noqa: E402
from deepaug_pipeline.search.records import FitRequest, TrainedChild, TrialRecord  # noqa: E402
from deepaug_pipeline.search.run import policy_space  # noqa: E402
from deepaug_pipeline.search.space import policy_optimizer  # noqa: E402
from deepaug_pipeline.search.tracking import TrackingTarget, TrialTracker, track_trial  # noqa: E402
from deepaug_pipeline.search.trial import TrialRunner  # noqa: E402

REPEATS = 3
DENSITY_TRIALS = 200  # the density default's iterations
POLICY = [[("translate-x", 0.3), ("horizontal-flip", 1.0)], [("translate-y", 0.3), ("crop", 0.3)],
          [("rotate", 0.3), ("horizontal-flip", 1.0)], [("shear", 0.3), ("coarse-dropout", 0.3)],
          [("crop", 0.4), ("translate-x", 0.2)]]  # fmt: skip


def step_rate(model_name: str, shape, batch: int) -> dict:
    """Steady-state training steps (no input pipeline, no validation)."""
    model = build_model(model_name, shape, 10)
    dummy = LabelledImages(np.zeros((batch, *shape), np.uint8), np.zeros(batch, np.int64))
    rate = train_step_rate(Trainer(model, dummy, FitSettings(epochs=1, batch_size=batch)), shape, batch)
    return {"img_per_s": rate, "train_flops_per_img": training_flops(model), "gflops": rate * training_flops(model) / 1e9,
            "params": model.count_params()}  # fmt: skip


def density_trial(splits, cfg: SearchConfig, runner: TrialRunner) -> dict:
    """Seconds of each part of one density trial at the default settings (3 children, 1000 images, 2 draws)."""
    cfg = cfg.model_copy(update={"reward": "density"})
    space = policy_space(cfg, 1)
    children = tuple(TrainedChild(i, tuple(runner.start_state(i))) for i in range(cfg.noise_seeds))  # untrained: same cost
    policy = Policy.from_pairs(POLICY)
    request = FitRequest.search(1, "standard", policy.to_dict(), space.encode(policy)).scoring(children)
    runner.run(request)  # traces the scoring graph (once per process)
    scoring = median([runner.run(request).wall_seconds for _ in range(REPEATS)])

    rng = np.random.default_rng(0)

    def told(optimizer):
        for _ in range(DENSITY_TRIALS):
            optimizer.tell(optimizer.ask(), float(-rng.uniform(0.4, 0.8)))
        return optimizer

    optimizer = told(policy_optimizer(space, cfg, 7))
    skopts_own = told(Optimizer(space.dimensions(), base_estimator=cfg.surrogate, n_initial_points=cfg.opt_initial_points,
                                acq_func=cfg.acquisition, random_state=7))  # fmt: skip

    def tell(opt=optimizer) -> None:
        opt.tell(opt.ask(), float(-rng.uniform(0.4, 0.8)))

    with tempfile.TemporaryDirectory() as tmp:
        from mlflow.tracking import MlflowClient

        uri = f"sqlite:///{tmp}/mlflow.db"
        client = MlflowClient(uri)
        experiment = client.create_experiment("bench", artifact_location=f"{tmp}/artifacts")
        parent = client.create_run(experiment).info.run_id
        tracker = TrialTracker(TrackingTarget(uri, experiment, parent), "bench")
        record = TrialRecord.of(request, runner.run(request), cfg.method, time.time())
        grid_images = splits.search_subset.x[:6]

        def tracked() -> None:
            track_trial(tracker, record, space, grid_images, True, 0)
            tracker.flush()

        def trial(inline: bool) -> None:
            """One trial as the loop runs it: score, log it to MLflow, tell the optimiser (which asks the next)."""
            runner.run(request)
            track_trial(tracker, record, space, grid_images, True, 0)
            if inline:
                tracker.flush()
            tell()

        parts = {"scoring_s": scoring, "optimiser_tell_s": median(timed(tell, REPEATS)),
                 "optimiser_tell_s_skopts_own_forest": median(timed(lambda: tell(skopts_own), REPEATS)),
                 "mlflow_run_with_grid_s": median(timed(tracked, REPEATS))}  # fmt: skip
        inline = median(timed(lambda: trial(True), REPEATS))
        overlapped = median(timed(lambda: trial(False), REPEATS))
        tracker.flush()
    return {"at_trial": DENSITY_TRIALS, **parts, "trial_s_tracking_inline": inline,
            "trial_s_tracking_beside_the_optimiser": overlapped, "scoring_share": scoring / overlapped,
            "inline_over_beside": inline / overlapped}  # fmt: skip


def main() -> None:
    cfg = SearchConfig()
    ingest = IngestConfig()
    splits = load_fashion_subset(ingest.train_set_size)
    rates = dense_rate_gflops()
    peak = rates["conv_gflops"]
    results: dict = {"dense_rate": rates,
                     "default_config": {f"child.{k}": getattr(cfg.child, k) for k in ("model", "epochs", "batch_size", "last_n_epochs")}}  # fmt: skip
    results["steps"] = {name: step_rate(name, (28, 28, 1), cfg.child.batch_size) for name in (cfg.child.model, "fastcnn")}
    for v in results["steps"].values():
        v["fraction_of_conv_rate"] = v["gflops"] / peak

    # Fits with the default child on the default base, shorter schedules, and the fixed overhead from a line fitted
    # to fit time against epochs; the default fit's time is extrapolated along that line.
    space = policy_space(cfg, 1)
    policy = Policy.from_pairs(POLICY).to_dict()
    per_epochs = {}
    for epochs in (4, 8, 16):
        child = cfg.child.model_copy(update={"epochs": epochs})
        runner = TrialRunner(splits.search_subset, splits.seed_validation_pool, 10, child, 42, space.op_indices())
        request = FitRequest("bench", "search", "standard", 0, policy)
        runner.run(request)  # the first fit traces the graph (once per process)
        per_epochs[epochs] = median([runner.run(request).wall_seconds for _ in range(REPEATS)])
    xs = np.array(sorted(per_epochs))
    ys = np.array([per_epochs[e] for e in xs])
    slope, intercept = np.polyfit(xs, ys, 1)
    fit_s = float(intercept + slope * cfg.child.epochs)
    model = runner.model
    n_train, n_val = len(splits.search_subset), cfg.child.validation_sample_size
    useful = cfg.child.epochs * n_train * training_flops(model) + cfg.child.last_n_epochs * n_val * forward_flops(model)
    results["fit"] = {
        "seconds_by_epochs": {int(k): v for k, v in per_epochs.items()},
        "default_fit_seconds_extrapolated": fit_s,
        "fixed_overhead_seconds": float(intercept),
        "fixed_overhead_share": float(intercept / fit_s),
        "seconds_per_epoch": float(slope),
        "useful_gflop": useful / 1e9,
        "efficiency_vs_conv_rate": useful / (fit_s * peak * 1e9),
    }
    results["density_trial"] = density_trial(splits, cfg, runner)
    results["targets"] = {
        "efficiency_at_least_50pct": results["fit"]["efficiency_vs_conv_rate"] >= 0.5,
        "overhead_at_most_5pct": results["fit"]["fixed_overhead_share"] <= 0.05,
    }
    write_results("trial", results)


if __name__ == "__main__":
    main()
