"""Headroom: does the search space hold a policy that beats the base on the final model beyond seed noise?

Run by hand: ``python benchmarks/bench_headroom.py [seeds]`` → ``benchmarks/results/headroom.json``.
The search can only recommend what its space holds and what the final model rewards. On the reduced Fashion-MNIST
protocol (quality_protocol.py), the final model (the evaluate default: WRN-10-1, 4000 images, 120 epochs, 10k test)
trains with crop + flip alone and with crop + flip + hand-set policies of the search space that the literature
reports gains for: Cutout (DeVries & Taylor 2017: a square of half the image side, on every image) at two sizes.
Each is paired with crop + flip on the same seeds (same initial weights and data order), and the test-error
difference is reported ± SE. If none beats crop + flip beyond 2 SE, the search's "no policy beat the base" is what
the data allows at this protocol, not the proxy's failure. For the proxy's side, each also gets the search's two
rewards as bench_fidelity.py measures them (the default child, 2 seeds, common random numbers with the base).
Runs are logged under benchmarks/results/quality_logs/, so an interrupted run resumes.
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import quality_protocol as qp  # noqa: E402
from bench_fidelity import Candidate, child_rewards  # noqa: E402
from common import write_results  # noqa: E402

from deepaug_pipeline.augment.policy import Policy  # noqa: E402
from deepaug_pipeline.config import EvaluateConfig  # noqa: E402
from deepaug_pipeline.evaluate.report import MIN_SEEDS_FOR_NOISE, beyond_seed_noise  # noqa: E402
from deepaug_pipeline.evaluate.results import paired_error_difference  # noqa: E402

BASE = {"base_augmentation": "standard"}
# (name, magnitude) of Cutout on every image (p_none 0, as DeVries & Taylor apply it): the table maps magnitude 1 to a
# square of half the shorter side (14 px on 28, their 16 px on 32), 0.6 to 0.3 of it (8 px).
CUTOUTS = (("cutout 14 px", 1.0), ("cutout 8 px", 0.6))


def main(seeds: int = 3) -> None:
    protocol = qp.load()
    base_policy = Policy((), p_none=1.0, metadata=BASE)
    policies = {name: replace(Policy.from_pairs([[("cutout", magnitude)]], p_none=0.0), metadata=BASE) for name, magnitude in CUTOUTS}
    base_runs = qp.evaluate(protocol, base_policy, EvaluateConfig(seeds=seeds, train_size=None, strategies=["standard"]),
                            log_name="headroom_base")  # fmt: skip
    rows = [{"name": "crop + flip", "test_errors": [r.test_error for r in base_runs],
             "run_seconds": [r.wall_seconds for r in base_runs]}]  # fmt: skip
    for name, policy in policies.items():
        cfg = EvaluateConfig(seeds=seeds, train_size=None, strategies=["standard+found"])
        runs = qp.evaluate(protocol, policy, cfg, log_name=f"headroom_{name.replace(' ', '_')}")
        difference = paired_error_difference(base_runs + runs, "standard+found", "standard")
        rows.append({"name": f"crop + flip + {name}", "policy": policy.describe(), "test_errors": [r.test_error for r in runs],
                     "run_seconds": [r.wall_seconds for r in runs],
                     "error_minus_crop_flip": {"mean": difference.mean, "se": None if math.isnan(difference.se) else difference.se,
                                               "per_seed": list(difference.gains),
                                               # None: too few paired seeds to call either way (a failed run drops its pair)
                                               "lower_beyond_2se": None if len(difference.gains) < MIN_SEEDS_FOR_NOISE
                                               else difference.mean < 0 and beyond_seed_noise(difference)}})  # fmt: skip
        print(rows[-1], flush=True)
    compared = [Candidate("base", "standard", base_policy)] + [Candidate(name, "standard+found", p) for name, p in policies.items()]
    rewards = child_rewards(protocol, compared, log_name="headroom_children")
    for row, candidate in zip(rows, compared, strict=True):
        row["child_rewards"] = rewards[candidate.name]
    called = {r["name"]: r["error_minus_crop_flip"]["lower_beyond_2se"] for r in rows[1:]}
    beats = [name for name, lower in called.items() if lower]
    uncalled = [name for name, lower in called.items() if lower is None]
    verdict = f"beat crop + flip beyond 2 SE: {', '.join(beats)}" if beats else "no hand-set policy beat crop + flip beyond 2 SE"
    if uncalled:
        verdict += f"; too few paired seeds (< {MIN_SEEDS_FOR_NOISE}) to call: {', '.join(uncalled)}"
    write_results("headroom", {"protocol": __doc__.split("\n\n")[1], "seeds": seeds, "rows": rows, "verdict": verdict})


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
