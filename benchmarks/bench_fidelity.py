"""Proxy fidelity: do the search's two rewards rank augmentations as the final model's test accuracy does?

Run by hand: ``python benchmarks/bench_fidelity.py [final seeds] [search log]`` → ``benchmarks/results/fidelity.json``
(``--resummarise``: recompute its ρ figures from the per-seed rows it holds, training nothing).
On the reduced Fashion-MNIST protocol (quality_protocol.py), for 9 augmentations (none; the base; base + RandAugment;
base + TrivialAugment-Wide; base + each of the top 3 re-evaluated policies of a real default search, read from its
committed log, default benchmarks/results/retrain_default_search.jsonl.gz; base + 2 random policies of the search
space) it records three numbers:
  * the retrain reward: the search's default child trained with the augmentation (2 seeds; mean validation accuracy
    of the last K epochs on the seed's validation sample), as ``search.reward: retrain`` scores a policy;
  * the density reward: the base's own children (the base row's child fits) scoring 1000 held-out images per child
    transformed by the augmentation (2 draws), as ``search.reward: density`` scores a policy;
  * the final model's test accuracy (the evaluate default: WRN-10-1, 4000 images, 120 epochs; 2 seeds unless told
    fewer: a run takes 200-500 s on 2 cores).
It reports Spearman's ρ of each reward against the final test accuracy with a 95% bootstrap interval over the
augmentations and, within each, over its seeds. Target (issue 12): ρ ≥ 0.7. Every fit is logged under benchmarks/results/quality_logs/, so an
interrupted run resumes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
import quality_protocol as qp  # noqa: E402
from common import RESULTS, write_results  # noqa: E402
from summarise_search_log import load as load_search_log  # noqa: E402
from summarise_search_log import summarise  # noqa: E402

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from deepaug_pipeline.augment.policy import Policy  # noqa: E402
from deepaug_pipeline.config import EvaluateConfig, SearchConfig  # noqa: E402
from deepaug_pipeline.data import LabelledImages  # noqa: E402
from deepaug_pipeline.evaluate.strategies import strategy_augment  # noqa: E402
from deepaug_pipeline.models import build_model  # noqa: E402
from deepaug_pipeline.models.training import Trainer  # noqa: E402
from deepaug_pipeline.search.reward import reward, validated_epochs  # noqa: E402
from deepaug_pipeline.search.run import policy_space  # noqa: E402
from deepaug_pipeline.search.space import policy_optimizer  # noqa: E402
from deepaug_pipeline.search.trial import child_fit_settings, sample_validation_set  # noqa: E402
from deepaug_pipeline.seeding import stream_rng, stream_seed  # noqa: E402

SEEDS = 2  # child fits per augmentation, for both rewards
BOOTSTRAP = 2000
DEFAULT_LOG = RESULTS / "retrain_default_search.jsonl.gz"


@dataclass(frozen=True)
class Candidate:
    name: str
    strategy: str  # the evaluate strategy that trains it
    policy: Policy  # base + this policy for ``standard+found``; carries the base for every strategy


def candidates(log: Path) -> tuple[str, list[Candidate]]:
    """The search's base and the augmentations compared."""
    header, records = load_search_log(log)
    by_trial = {r["trial_id"]: r for r in records if r["stage"] == "search"}
    base = by_trial[min(by_trial)]["base"]
    tagged = {"base_augmentation": base}
    reevaluated = sorted(summarise(header, records)["reevaluated"], key=lambda r: -r["mean"])
    top = [Policy.from_dict(by_trial[r["trial_id"]]["policy"]) for r in reevaluated[:3]]
    space = policy_space(SearchConfig(), 1)
    sampler = policy_optimizer(space, SearchConfig(method="random"), stream_seed(qp.SEED, "fidelity_random"))
    randoms = [space.decode(p) for p in sampler.ask(n_points=2)]
    nothing = Policy((), p_none=1.0, metadata=tagged)
    out = [Candidate("none", "none", nothing), Candidate("base", "standard", nothing),
           Candidate("base + RandAugment", "standard+randaugment", nothing),
           Candidate("base + TrivialAugment-Wide", "standard+trivialaugment", nothing)]  # fmt: skip
    out += [Candidate(f"base + top {i + 1}", "standard+found", replace(p, metadata=tagged)) for i, p in enumerate(top)]
    out += [Candidate(f"base + random {i + 1}", "standard+found", replace(p, metadata=tagged)) for i, p in enumerate(randoms)]
    return base, out


class ChildBench:
    """The search's child for any augmentation, with per-seed initial weights and validation samples shared by
    every candidate (common random numbers), and the density reward on the base's trained children."""

    def __init__(self, protocol: qp.Protocol, search: SearchConfig = SearchConfig(), seeds: int = SEEDS) -> None:
        self.protocol = protocol
        self.search = search
        self.child = self.search.child
        self.initial = [[v.numpy() for v in self._model(s).variables] for s in range(seeds)]
        self.validation = [sample_validation_set(protocol.splits.seed_validation_pool, self.child.validation_sample_size,
                                                 stream_rng(qp.SEED, "fidelity_validation", s)) for s in range(seeds)]  # fmt: skip
        self.held_out = []
        for s, sample in enumerate(self.validation):
            idx = stream_rng(qp.SEED, "fidelity_density_images", s).permutation(len(sample))[: self.child.density_images]
            self.held_out.append(LabelledImages(sample.x[idx], sample.y[idx]))

    def _model(self, seed_index: int):
        import keras

        keras.utils.set_random_seed(stream_seed(qp.SEED, "fidelity_child", seed_index))
        return build_model(self.child.model, self.protocol.child_subset.x.shape[1:], self.protocol.n_classes, **self.child.model_options)

    def trainer(self, candidate: Candidate) -> Trainer:
        fit = child_fit_settings(self.child, validate_last=validated_epochs(self.child.reward_epochs, self.child.last_n_epochs))
        augment = strategy_augment(candidate.strategy, candidate.policy, EvaluateConfig(), candidate.policy.metadata["base_augmentation"])
        return Trainer(self._model(0), self.protocol.child_subset, fit, augment, graph_seed=stream_seed(qp.SEED, "fidelity_child", 0))

    def retrain_reward(self, trainer: Trainer, seed_index: int) -> tuple[float, list]:
        """The reward of one child fit, and the trained weights."""
        s = self.child
        trainer.reset(self.initial[seed_index])
        history = trainer.fit((), stream_seed(qp.SEED, "fidelity_fit", seed_index), self.validation[seed_index])
        return reward(history, s.reward_epochs, s.last_n_epochs, s.overfit_gap).value, [v.numpy() for v in trainer.model.variables]

    def density_reward(self, trainer: Trainer, base_child: list, seed_index: int) -> float:
        """The base's child of ``seed_index`` scoring its held-out images under the trainer's augmentation."""
        trainer.reset(base_child)
        draws = [trainer.evaluate_augmented((), stream_seed(qp.SEED, "fidelity_density", seed_index, d), self.held_out[seed_index])
                 for d in range(self.child.density_draws)]  # fmt: skip
        return float(np.mean([accuracy for _, accuracy in draws]))


def child_rewards(protocol: qp.Protocol, compared: list[Candidate], log_name: str = "fidelity_children",
                  search: SearchConfig = SearchConfig()) -> dict[str, dict]:  # fmt: skip
    """Both rewards per candidate and seed (``compared`` holds one named "base"), and each retrain fit's seconds;
    resumes from its log (the base's children are re-trained if a density score is missing, since their weights are
    not kept). ``search`` gives the child (the default's unless told)."""
    bench = ChildBench(protocol, search)
    config = {"seed": qp.SEED, "search": bench.search.model_dump(mode="json"), "seeds": SEEDS,
              "candidates": {c.name: [c.strategy, c.policy.to_dict()] for c in compared}}  # fmt: skip
    with qp.STORE.open(log_name, config, section="fidelity") as run_log:
        done = {t["key"]: t for t in run_log.trials}

        def record(key: str, **fields) -> None:
            run_log.append({"key": key, **fields})
            done[key] = run_log.trials[-1]
            print(key, fields, flush=True)

        trainers = {c.name: bench.trainer(c) for c in compared}
        base = trainers["base"]
        for s in range(SEEDS):
            if all(f"density/{c.name}/s{s}" in done for c in compared) and f"retrain/base/s{s}" in done:
                continue
            start = time.perf_counter()
            value, child = bench.retrain_reward(base, s)
            if f"retrain/base/s{s}" not in done:
                record(f"retrain/base/s{s}", reward=value, seconds=time.perf_counter() - start)
            for c in compared:
                if f"density/{c.name}/s{s}" not in done:
                    record(f"density/{c.name}/s{s}", reward=bench.density_reward(trainers[c.name], child, s))
        for c in compared:
            for s in range(SEEDS):
                if f"retrain/{c.name}/s{s}" not in done:
                    start = time.perf_counter()
                    value = bench.retrain_reward(trainers[c.name], s)[0]
                    record(f"retrain/{c.name}/s{s}", reward=value, seconds=time.perf_counter() - start)
        rewards = {c.name: {kind: [done[f"{kind}/{c.name}/s{s}"]["reward"] for s in range(SEEDS)] for kind in ("retrain", "density")}
                   for c in compared}  # fmt: skip
        for c in compared:  # fits logged before seconds were recorded have none
            rewards[c.name]["retrain_seconds"] = [done[f"retrain/{c.name}/s{s}"].get("seconds") for s in range(SEEDS)]
        return rewards


def rho_with_interval(rewards: list[list[float]], accuracies: list[list[float]]) -> dict:
    """Spearman's ρ between the per-augmentation means of a reward and of the final test accuracy, with a 95%
    bootstrap interval that resamples the augmentations and, within each, its seeds (child fits and final runs
    apart): both the choice of augmentations and each mean's seed noise widen it."""
    rng = np.random.default_rng(0)
    x = np.array([np.mean(r) for r in rewards])
    y = np.array([np.mean(a) for a in accuracies])

    def resampled_mean(values: list[float]) -> float:
        return float(np.mean(rng.choice(values, len(values))))

    boot = []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, len(x), len(x))
        if len(set(idx)) > 2:
            bx = [resampled_mean(rewards[i]) for i in idx]
            by = [resampled_mean(accuracies[i]) for i in idx]
            boot.append(spearmanr(bx, by).statistic)
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    result = spearmanr(x, y)
    return {"rho": float(result.statistic), "p": float(result.pvalue), "bootstrap_95": [float(lo), float(hi)],
            "bootstrap": "augmentations, and seeds within each", "target_rho_at_least_0_7": bool(result.statistic >= 0.7)}  # fmt: skip


def fidelity(rows: list[dict]) -> dict:
    test = [r["test_accuracies"] for r in rows]
    return {"retrain_vs_final": rho_with_interval([r["retrain_rewards"] for r in rows], test),
            "density_vs_final": rho_with_interval([r["density_rewards"] for r in rows], test)}


def resummarise() -> None:
    """Recompute the ρ figures of fidelity.json from its stored per-seed rows (no training), keeping everything else."""
    import json

    path = RESULTS / "fidelity.json"
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, **fidelity(stored["rows"])}, indent=2) + "\n")


def main(final_seeds: int = 2, log: Path = DEFAULT_LOG) -> None:
    protocol = qp.load()
    base, compared = candidates(log)
    rewards = child_rewards(protocol, compared)
    rows = []
    for c in compared:
        cfg = EvaluateConfig(seeds=final_seeds, train_size=None, strategies=[c.strategy])
        slug = c.name.replace(" + ", "_").replace(" ", "_").replace("-", "_").lower()
        runs = qp.evaluate(protocol, c.policy, cfg, log_name=f"fidelity_{slug}")
        test = [r.test_accuracy for r in runs]
        rows.append({"name": c.name, "strategy": c.strategy, "policy": c.policy.describe() if c.policy.sub_policies else None,
                     "retrain_reward": float(np.mean(rewards[c.name]["retrain"])), "retrain_rewards": rewards[c.name]["retrain"],
                     "density_reward": float(np.mean(rewards[c.name]["density"])), "density_rewards": rewards[c.name]["density"],
                     "test_accuracy": float(np.mean(test)), "test_accuracies": test,
                     "final_run_seconds": [r.wall_seconds for r in runs]})  # fmt: skip
        print(rows[-1], flush=True)
    write_results("fidelity", {
        "protocol": __doc__.split("\n\n")[1], "search_log": str(log), "base": base, "final_seeds": final_seeds, "rows": rows,
        **fidelity(rows),
    })  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:] == ["--resummarise"]:
        resummarise()
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 2, Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_LOG)
