"""Proxy fidelity: does the child's reward rank policies as the final model's test accuracy does?

Run by hand: ``python benchmarks/bench_fidelity.py`` → ``benchmarks/results/fidelity.json``.
On the reduced Fashion-MNIST protocol (quality_protocol.py), for ≥ 8 augmentations (none; the base; base +
RandAugment; base + TrivialAugment-Wide; base + each of the search's top 3 re-evaluated policies; base + 2 random
policies of the search space) it records the child's reward (the search's child, 2 seeds, the mean of the last K
epochs on the seed's validation sample) and the final model's test accuracy (the evaluate default, 2 seeds), and
reports Spearman's ρ with a 95% bootstrap interval over policies. Target (issue 12): ρ ≥ 0.7.
It reuses the search log and the final runs of bench_quality.py where they are the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import quality_protocol as qp  # noqa: E402
from common import write_results  # noqa: E402

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from deepaug_pipeline.augment.policy import Policy  # noqa: E402
from deepaug_pipeline.config import EvaluateConfig, IngestConfig, SearchConfig  # noqa: E402
from deepaug_pipeline.evaluate import strategy_augment  # noqa: E402
from deepaug_pipeline.models import build_model  # noqa: E402
from deepaug_pipeline.search import results  # noqa: E402
from deepaug_pipeline.search.reward import reward, validated_epochs  # noqa: E402
from deepaug_pipeline.search.run import child_settings, policy_space  # noqa: E402
from deepaug_pipeline.search.space import policy_optimizer  # noqa: E402
from deepaug_pipeline.search.trial import sample_validation_set  # noqa: E402
from deepaug_pipeline.seeding import stream_rng, stream_seed  # noqa: E402

SEEDS = 2
BOOTSTRAP = 2000


def child_reward(protocol: qp.Protocol, strategy: str, policy: Policy, base: str, seed_index: int) -> float:
    """The search child's reward for an evaluate strategy (RandAugment and TrivialAugment are not policies, so the
    child is trained here with the strategy's augmentation rather than through the search's runner)."""
    import keras

    from deepaug_pipeline.models.training import Trainer

    settings = child_settings(SearchConfig(), IngestConfig())
    keras.utils.set_random_seed(stream_seed(qp.SEED, "fidelity_child", seed_index))
    model = build_model(settings.model, protocol.child_subset.x.shape[1:], protocol.n_classes, **(settings.model_options or {}))
    fit = settings.fit_settings(validate_last=validated_epochs(settings.reward_epochs, settings.last_n_epochs))
    trainer = Trainer(model, protocol.child_subset, fit, strategy_augment(strategy, policy, EvaluateConfig(), base))
    validation = sample_validation_set(protocol.splits.seed_validation_pool, settings.validation_size,
                                       stream_rng(qp.SEED, "fidelity_validation", seed_index))  # fmt: skip
    history = trainer.fit((), stream_seed(qp.SEED, "fidelity_fit", seed_index), validation)
    return reward(history, settings.reward_epochs, settings.last_n_epochs, settings.overfit_gap).value


def candidates(result) -> list[tuple[str, str, Policy]]:
    """(name, evaluate strategy, policy) for every augmentation compared."""
    top = [Policy.from_dict(result.trial(p.trial_id).policy) for p in result.reevaluated[:3]]
    space = policy_space(SearchConfig(), 1)
    sampler = policy_optimizer(space, SearchConfig(method="random"), stream_seed(qp.SEED, "fidelity_random"))
    randoms = [space.decode(p) for p in sampler.ask(n_points=2)]
    out = [("none", "none", None), ("base", "standard", None), ("base + RandAugment", "standard+randaugment", None),
           ("base + TrivialAugment-Wide", "standard+trivialaugment", None)]  # fmt: skip
    out += [(f"base + top {i + 1}", "standard+found", p) for i, p in enumerate(top)]
    out += [(f"base + random {i + 1}", "standard+found", p) for i, p in enumerate(randoms)]
    return out


def main() -> None:
    protocol = qp.load()
    result = qp.search(protocol, SearchConfig(track_sample_grids=False))
    base = result.noise_floor.base
    rows = []
    for i, (name, strategy, policy) in enumerate(candidates(result)):
        found = policy or Policy((), p_none=1.0)
        found = Policy(found.sub_policies, found.p_none, {"base_augmentation": base})
        cfg = EvaluateConfig(seeds=SEEDS, train_size=None, strategies=[strategy])
        runs = qp.evaluate(protocol, found, cfg, log_name=f"fidelity_{i}")
        child = [child_reward(protocol, strategy, found, base, s) for s in range(SEEDS)]
        rows.append({"name": name, "strategy": strategy, "policy": None if policy is None else policy.describe(),
                     "child_reward": float(np.mean(child)), "child_rewards": child,
                     "test_accuracy": float(np.mean([r["test_accuracy"] for r in runs])),
                     "test_accuracies": [r["test_accuracy"] for r in runs]})  # fmt: skip
        print(rows[-1], flush=True)
    x = np.array([r["child_reward"] for r in rows])
    y = np.array([r["test_accuracy"] for r in rows])
    rho = float(spearmanr(x, y).statistic)
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, len(rows), len(rows))
        if len(set(idx)) > 2:
            boot.append(spearmanr(x[idx], y[idx]).statistic)
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    write_results("fidelity", {"protocol": __doc__.split("\n\n")[1], "verdict": results.verdict(result), "rows": rows,
                               "spearman_rho": rho, "bootstrap_95": [float(lo), float(hi)],
                               "target_rho_at_least_0_7": rho >= 0.7})  # fmt: skip


if __name__ == "__main__":
    main()
