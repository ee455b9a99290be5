"""Child alignment: which child regime ranks the headroom policies as the final model does?

Run by hand: ``python benchmarks/bench_child_alignment.py [regime index ...]`` → ``benchmarks/results/child_alignment.json``
(rows of regimes not run this time are kept from the file).
bench_headroom.py measured, on the final model (5 paired seeds), that crop + flip + Cutout 8 px lowers the test error
and crop + flip + Cutout 14 px raises it, while the default child scored both far below crop + flip. Here each
candidate child regime (the reduced Fashion-MNIST protocol, quality_protocol.py; WRN-10-1, SGD + Nesterov + cosine)
trains crop + flip and the two Cutout policies on the same 2 seeds (common random numbers, as bench_fidelity.py), and
the paired reward differences are set beside the final model's accuracy differences. A regime aligns when it orders
the three as the final model does (Cutout 8 px above crop + flip above Cutout 14 px); its seconds per fit say what a
search with it costs. Fits are logged under benchmarks/results/quality_logs/, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import quality_protocol as qp  # noqa: E402
from bench_fidelity import Candidate, child_rewards  # noqa: E402
from bench_headroom import BASE, CUTOUTS  # noqa: E402
from common import RESULTS, write_results  # noqa: E402

import numpy as np  # noqa: E402

from deepaug_pipeline.augment.policy import Policy  # noqa: E402
from deepaug_pipeline.config import ChildConfig, IngestConfig, SearchConfig  # noqa: E402

# (training images, epochs, batch size, learning rate): the search's default child first, then the final model's
# recipe (120 epochs, batch 128, lr 0.05) on fewer images, where a CPU trains more images a second than at batch 32.
REGIMES = [
    (1000, 60, 32, 0.02),
    (2000, 120, 128, 0.05),
    (1000, 120, 128, 0.05),
    (1000, 120, 32, 0.02),
    (4000, 120, 128, 0.05),  # the final model's own regime and images: the search's reward where headroom.json saw the gain
]


def final_accuracy_gains() -> dict[str, float]:
    """The final model's test-accuracy difference of each headroom policy against crop + flip (headroom.json)."""
    rows = json.loads((RESULTS / "headroom.json").read_text())["rows"]
    return {r["name"]: -r["error_minus_crop_flip"]["mean"] for r in rows if "error_minus_crop_flip" in r}


def regime_row(regime: tuple[int, int, int, float], compared: list[Candidate], final: dict[str, float]) -> dict:
    n_images, epochs, batch, lr = regime
    if n_images == qp.TRAIN_IMAGES:  # the child trains on all of the final model's images (a split would leave none out)
        protocol = qp.load()
        protocol = replace(protocol, child_subset=protocol.splits.search_subset)
    else:
        protocol = qp.load(IngestConfig(train_set_size=n_images))
    search = SearchConfig(child=ChildConfig(epochs=epochs, batch_size=batch, learning_rate=lr))
    rewards = child_rewards(protocol, compared, log_name=f"alignment_{n_images}_{epochs}_{batch}_{lr}", search=search)
    base = np.array(rewards["base"]["retrain"])
    policies = {}
    for c in compared[1:]:
        paired = np.array(rewards[c.name]["retrain"]) - base
        policies[c.name] = {"retrain_minus_base": {"mean": float(paired.mean()), "per_seed": paired.tolist()},
                            "final_accuracy_minus_base": final[c.name]}  # fmt: skip
    order = sorted(["crop + flip", *policies], key=lambda n: policies[n]["retrain_minus_base"]["mean"] if n in policies else 0.0)
    final_order = sorted(["crop + flip", *policies], key=lambda n: final.get(n, 0.0))
    seconds = [s for c in compared for s in rewards[c.name]["retrain_seconds"] if s is not None]
    return {"train_images": n_images, "epochs": epochs, "batch_size": batch, "learning_rate": lr,
            "base_reward": float(base.mean()), "policies": policies, "aligned": order == final_order,
            "child_order_low_to_high": order, "seconds_per_fit_median": float(np.median(seconds)) if seconds else None,
            "rewards": rewards}  # fmt: skip


def main(which: list[int]) -> None:
    base_policy = Policy((), p_none=1.0, metadata=BASE)
    compared = [Candidate("base", "standard", base_policy)]
    compared += [Candidate(f"crop + flip + {name}", "standard+found", replace(Policy.from_pairs([[("cutout", m)]], p_none=0.0), metadata=BASE))
                 for name, m in CUTOUTS]  # fmt: skip
    final = final_accuracy_gains()
    path = RESULTS / "child_alignment.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    for i in which:
        key = dict(zip(("train_images", "epochs", "batch_size", "learning_rate"), REGIMES[i], strict=True))
        rows = [r for r in rows if {k: r[k] for k in key} != key] + [regime_row(REGIMES[i], compared, final)]
        print({k: v for k, v in rows[-1].items() if k != "rewards"}, flush=True)
        write_results("child_alignment", {"protocol": __doc__.split("\n\n")[1], "rows": rows})


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or list(range(len(REGIMES))))
