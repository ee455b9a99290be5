"""Validation history → reward (pure functions).

``last`` (the default): the mean validation accuracy of the last K epochs, an unbiased estimate of where training
ended. ``best_non_overfit`` (DeepAugment's rule): the mean of the K best validation accuracies among epochs whose
train − validation accuracy gap is ≤ ``overfit_gap``; a maximum over epochs is biased upwards, so it is an option only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from deepaug_pipeline.models.training import History

RewardEpochs = Literal["last", "best_non_overfit"]


@dataclass(frozen=True)
class Reward:
    value: float
    epochs_used: list[int]
    fallback: bool  # best_non_overfit: no epoch passed the overfit test, so the last K were used


def validated_epochs(rule: RewardEpochs, last_n_epochs: int) -> int | None:
    """How many final epochs the trainer must validate for ``rule`` (None: every epoch)."""
    return last_n_epochs if rule == "last" else None


def reward(history: History, rule: RewardEpochs, last_n_epochs: int, overfit_gap: float) -> Reward:
    """The reward of one fit under ``rule``; ties keep the earlier epoch."""
    val = np.asarray(history.val_accuracy, np.float64)
    k = min(last_n_epochs, len(val))
    last = np.arange(len(val) - k, len(val))
    if rule == "last":
        return Reward(float(np.mean(val[last])), last.tolist(), False)
    gap = np.asarray(history.train_accuracy, np.float64) - val
    ok = np.flatnonzero(np.isfinite(val) & (gap <= overfit_gap))
    if len(ok) == 0:
        return Reward(float(np.mean(val[last])), last.tolist(), True)
    chosen = np.sort(ok[np.argsort(-val[ok], kind="stable")][:k])
    return Reward(float(np.mean(val[chosen])), chosen.tolist(), False)
