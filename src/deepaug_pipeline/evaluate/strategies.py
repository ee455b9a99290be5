"""The strategies the final comparison trains: what each is in words, what it augments, which are the same training."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from deepaug_pipeline.augment import baselines
from deepaug_pipeline.augment.baselines import BASE_LABELS
from deepaug_pipeline.augment.policy import Policy, apply_policy
from deepaug_pipeline.config import EvaluateConfig
from deepaug_pipeline.models.training import AugmentFn, no_augmentation


def strategy_labels(base: str = "standard", no_policy_found: bool = False) -> dict[str, str]:
    """What each strategy is, in words, on top of the base augmentation the search chose. When no policy beat the
    base, ``standard+found`` is the base alone, and its label says so rather than crediting a policy."""
    b = BASE_LABELS[base]
    return {
        "none": "none",
        "standard": f"standard ({b})",
        "standard+found": f"{b} (no policy found)" if no_policy_found else f"{b} + found policy",
        "standard+randaugment": f"{b} + RandAugment",
        "standard+trivialaugment": f"{b} + TrivialAugment-Wide",
    }


def found_base(found: Policy) -> str:
    """The base augmentation the search chose (written with the policy); crop + flip for a policy from elsewhere."""
    return found.metadata.get("base_augmentation", "standard")


def policy_identity(found: Policy) -> dict:
    """What an evaluation of ``found`` depends on: its operations and its base, not its metadata, so a resumed
    search that found the same policy resumes the evaluation's run log too."""
    return {"sub_policies": found.to_dict()["sub_policies"], "p_none": found.p_none, "base": found_base(found)}


def reusable_runs(logged: dict, config: dict) -> Callable[[dict], bool] | None:
    """Which runs of an evaluation log written for another found policy still hold (``TrialLog``'s ``reusable``):
    ``none`` needs no policy and no base; ``standard``, RandAugment and TrivialAugment need the base alone. So a
    search that found another policy on the same base costs only ``standard+found``'s runs again. None when
    anything but the found policy changed (the seed, the evaluate config, the data)."""
    if {k: v for k, v in logged.items() if k != "found_policy"} != {k: v for k, v in config.items() if k != "found_policy"}:
        return None
    same_base = logged.get("found_policy", {}).get("base") == config["found_policy"]["base"]
    return lambda run: run.get("strategy") == "none" or (same_base and run.get("strategy") != "standard+found")


def strategy_aliases(base: str, found: Policy | None) -> dict[str, str]:
    """Strategies that are the same training as another and are not trained twice: ``standard`` is ``none`` when
    the search chose no base; ``standard+found`` is ``standard`` when no policy beat the base beyond noise."""
    aliases = {"standard": "none"} if base == "none" else {}
    if found is not None and found.is_empty:
        aliases["standard+found"] = aliases.get("standard", "standard")
    return aliases


def _then(first: Callable, second: Callable) -> AugmentFn:
    def fn(x, aug_args, seed):
        s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        return second(first(x, s1), s2)

    return fn


def strategy_augment(name: str, found: Policy | None, cfg: EvaluateConfig, base: str = "standard") -> AugmentFn:
    """The per-batch augmentation of one strategy (float [0, 1] images in and out); ``standard`` is ``base``."""
    params = baselines.base_params(base)

    def standard(x, seed):
        return baselines.base_augment(x, params, seed)

    if name == "none":
        return no_augmentation
    if name == "standard":
        return lambda x, aug_args, seed: standard(x, seed)
    if name == "standard+found":
        if found is None:
            raise ValueError("strategy 'standard+found' needs the search's best policy")
        tensors, available = found.tensors(), found.op_indices()
        return _then(standard, lambda x, s: apply_policy(x, tensors, s, available))
    if name == "standard+randaugment":
        return _then(standard, lambda x, s: baselines.randaugment(x, s, cfg.randaugment_n, cfg.randaugment_m))
    if name == "standard+trivialaugment":
        return _then(standard, baselines.trivialaugment_wide)
    raise ValueError(f"unknown strategy '{name}'")
