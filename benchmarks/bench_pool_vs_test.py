"""Pool against test: does the seed validation pool (what a child is scored on) see a policy's gain where the test
split (what the final model is judged on) does?

Run by hand: ``python benchmarks/bench_pool_vs_test.py [seeds]`` → ``benchmarks/results/pool_vs_test.json``.
validation_noise.json found evaluate's own regime, as a child scored on the whole pool, putting crop + flip + Cutout
8 px 0.25 points below crop + flip (3 seeds), where headroom.json's final models put it 0.29 points above on the test
split (5 seeds): 2.7 SE apart. The child trains on the same 4000 images as the final model in this protocol, so the
gap is in the seeds, in the images scored, or chance. Here the final model itself (headroom.json's runs: the same
strategies, seeds and weights, so its test errors must reproduce) is scored per image on both the test split and the
pool. On one pair of models the difference between the two gains has no training noise, only the two samples'.
Each run's per-image scores are cached under benchmarks/results/quality_logs/, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import quality_protocol as qp  # noqa: E402
from bench_headroom import BASE, CUTOUTS  # noqa: E402
from bench_validation_noise import correct_per_image  # noqa: E402
from common import RESULTS, write_results  # noqa: E402

from deepaug_pipeline.augment.policy import Policy  # noqa: E402
from deepaug_pipeline.config import EvaluateConfig  # noqa: E402
from deepaug_pipeline.evaluate.final import FinalTrainer  # noqa: E402

CACHE = RESULTS / "quality_logs" / "pool_vs_test"
STRATEGIES = ("standard", "standard+found")  # crop + flip, and crop + flip + Cutout 8 px


def scores(seeds: int) -> dict[tuple[str, int], dict]:
    """Per strategy and seed: the test error as evaluate reports it, and 0/1 per image of the test split and pool."""
    protocol = qp.load()
    s = protocol.splits
    found = replace(Policy.from_pairs([[("cutout", dict(CUTOUTS)["cutout 8 px"])]], p_none=0.0), metadata=BASE)
    cfg = EvaluateConfig(seeds=seeds, train_size=None, strategies=list(STRATEGIES))
    trainer = None
    out = {}
    for seed_index in range(seeds):
        for strategy in STRATEGIES:
            cached = CACHE / f"{strategy}_s{seed_index}.npz"
            if not cached.exists():
                if trainer is None:  # as qp.evaluate builds it for headroom.json
                    trainer = FinalTrainer(s.search_subset, protocol.validation, s.test, protocol.n_classes, found, cfg, qp.SEED, "standard")
                run = trainer.run(strategy, seed_index)
                model = trainer.trainer.model
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(cached, test_error=run.test_error, seconds=run.wall_seconds,
                                    test=correct_per_image(model, s.test), pool=correct_per_image(model, s.seed_validation_pool))  # fmt: skip
            saved = np.load(cached)
            out[strategy, seed_index] = {k: saved[k] for k in ("test_error", "seconds", "test", "pool")}
            print(strategy, seed_index, float(saved["test_error"]), float(saved["seconds"]), flush=True)
    return out


def main(seeds: int | None = None) -> None:
    """``seeds``: headroom.json's unless told (its runs are the ones retrained and checked here)."""
    headroom_results = json.loads((RESULTS / "headroom.json").read_text())
    seeds = seeds or headroom_results["seeds"]
    runs = scores(seeds)
    headroom = {r["name"]: r["test_errors"] for r in headroom_results["rows"]}
    rows = []
    for seed_index in range(seeds):
        base, policy = runs["standard", seed_index], runs["standard+found", seed_index]
        gain = {where: policy[where].astype(np.float64) - base[where] for where in ("test", "pool")}
        rows.append({
            "seed": seed_index,
            # the same runs as headroom.json's: their test errors must match
            "test_error_base": float(base["test_error"]), "headroom_test_error_base": headroom["crop + flip"][seed_index],
            "test_error_policy": float(policy["test_error"]),
            "headroom_test_error_policy": headroom["crop + flip + cutout 8 px"][seed_index],
            "accuracy_gain_on_test_points": 100 * gain["test"].mean(), "accuracy_gain_on_pool_points": 100 * gain["pool"].mean(),
            # the two samples' error of the difference between the gains (the models are the same: no training noise)
            "se_of_test_minus_pool_points": 100 * float(np.sqrt(gain["test"].var() / gain["test"].size + gain["pool"].var() / gain["pool"].size)),
            "run_seconds": [float(base["seconds"]), float(policy["seconds"])],
        })  # fmt: skip
        print(rows[-1], flush=True)
    test_minus_pool = np.array([r["accuracy_gain_on_test_points"] - r["accuracy_gain_on_pool_points"] for r in rows])
    se = float(np.sqrt(np.sum([r["se_of_test_minus_pool_points"] ** 2 for r in rows]))) / len(rows)
    write_results("pool_vs_test", {"protocol": __doc__.split("\n\n")[1], "seeds": seeds, "rows": rows,
                                   "test_minus_pool_gain_points": {"mean": float(test_minus_pool.mean()), "sampling_se": se}})  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
