"""Does a longer schedule give augmentation beyond crop + flip more room on the final model?

Run by hand: ``python benchmarks/bench_schedule.py [seeds] [epochs ...]`` (default: 2 seeds, 200 then 120 epochs)
→ ``benchmarks/results/schedule.json``, rewritten after each schedule.
Issue 12 measured the CPU final model (WRN-10-1 on reduced Fashion-MNIST, quality_protocol.py) at 30 and 120 epochs:
at 120 TrivialAugment-Wide tied crop + flip and still underfit (train accuracy 0.83), and Cutout 8 px, the one policy
of the space known to pay, gained about 0.3 points (headroom.json). If strong augmentation needs a longer schedule,
the gains over crop + flip grow with the epochs. Per schedule, crop + flip, + TrivialAugment-Wide and + Cutout 8 px
(headroom.json's policy) train on the same seeds (same initial weights and data order within a seed), and each
gain over crop + flip is paired by seed, ± SE. Runs are logged under benchmarks/results/quality_logs/, per schedule,
so an interrupted benchmark resumes.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import quality_protocol as qp  # noqa: E402
from bench_headroom import BASE  # noqa: E402
from common import write_results  # noqa: E402

from deepaug_pipeline.augment.policy import Policy  # noqa: E402
from deepaug_pipeline.config import EvaluateConfig  # noqa: E402
from deepaug_pipeline.evaluate.records import EvaluationRun  # noqa: E402
from deepaug_pipeline.evaluate.results import paired_error_difference  # noqa: E402

CUTOUT_8PX = replace(Policy.from_pairs([[("cutout", 0.6)]], p_none=0.0), metadata=BASE)
COMPARED = {"standard+trivialaugment": "+ TrivialAugment-Wide", "standard+found": "+ Cutout 8 px"}


def figures(runs: list[EvaluationRun]) -> dict:
    """Per seed: test error, the last epoch's accuracy on the augmented training images (how far it underfits), seconds."""
    return {"test_errors": [r.test_error for r in runs], "last_train_accuracy": [r.history["train_accuracy"][-1] for r in runs],
            "run_seconds": [r.wall_seconds for r in runs]}  # fmt: skip


def schedule(protocol: qp.Protocol, epochs: int, seeds: int) -> dict:
    cfg = EvaluateConfig(seeds=seeds, train_size=None, epochs=epochs, strategies=["standard", *COMPARED])
    start = time.perf_counter()
    runs = qp.evaluate(protocol, CUTOUT_8PX, cfg, log_name=f"schedule_{epochs}")
    row = {"epochs": epochs, "seconds_this_process": time.perf_counter() - start,
           "crop + flip": figures([r for r in runs if r.strategy == "standard"])}  # fmt: skip
    for strategy, name in COMPARED.items():
        difference = paired_error_difference(runs, strategy, "standard")
        row[name] = {**figures([r for r in runs if r.strategy == strategy]),
                     "error_minus_crop_flip": {"mean": difference.mean, "se": None if math.isnan(difference.se) else difference.se,
                                               "per_seed": list(difference.gains)}}  # fmt: skip
    print(row, flush=True)
    return row


def main(seeds: int = 2, epochs: tuple[int, ...] = (200, 120)) -> None:
    protocol = qp.load()
    rows = []
    for e in epochs:
        rows.append(schedule(protocol, e, seeds))
        write_results("schedule", {"protocol": __doc__.split("\n\n")[1], "seeds": seeds, "policy": CUTOUT_8PX.describe(), "rows": rows})


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2, tuple(int(a) for a in sys.argv[2:]) or (200, 120))
