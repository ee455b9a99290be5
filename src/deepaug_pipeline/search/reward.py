"""Validation histories → reward (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepaug_pipeline.models.training import History


@dataclass(frozen=True)
class SampleReward:
    reward: float
    epochs_used: list[int]
    fallback: bool  # no epoch passed the overfit test, so the last K were used


def sample_reward(history: History, last_n_epochs: int, overfit_gap: float) -> SampleReward:
    """Mean of the K best validation accuracies among epochs whose train − val accuracy gap ≤ overfit_gap.

    If no epoch qualifies, the mean of the last K epochs, flagged. Ties keep the earlier epoch.
    """
    val = np.asarray(history.val_accuracy, np.float64)
    gap = np.asarray(history.train_accuracy, np.float64) - val
    k = min(last_n_epochs, len(val))
    ok = np.flatnonzero(np.isfinite(val) & (gap <= overfit_gap))
    if len(ok) == 0:
        chosen = np.arange(len(val) - k, len(val))
        return SampleReward(float(np.mean(val[chosen])), chosen.tolist(), True)
    order = ok[np.argsort(-val[ok], kind="stable")][:k]
    chosen = np.sort(order)
    return SampleReward(float(np.mean(val[chosen])), chosen.tolist(), False)


def trial_reward(histories: list[History], last_n_epochs: int, overfit_gap: float) -> tuple[float, list[SampleReward]]:
    """Mean over samples of ``sample_reward``."""
    samples = [sample_reward(h, last_n_epochs, overfit_gap) for h in histories]
    return float(np.mean([s.reward for s in samples])), samples
