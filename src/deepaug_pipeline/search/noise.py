"""Seed noise and what a gain is worth: the noise floor, the base choice, and paired re-evaluation (pure).

A seed changes the child's initial weights, its data order, its augmentation draws and its validation sample.
The spread σ of the base's reward over the noise seeds is the search's noise floor. A policy trial runs on seed 0,
so its gain is taken against the base on seed 0 (the seed's own effect, a point or two, cancels) with the standard
error ``σ·√2`` of a difference of two fits (conservative: σ still holds the seed effect that the pairing removes).
Screening an op (optional) is a single fit per magnitude with such a gain; an op leaves the space when it hurts
beyond ``ACCEPT_SE`` at every magnitude tried. Re-evaluation pairs a candidate with the base on the same fresh seeds; the candidate is accepted when its mean
paired gain exceeds ``ACCEPT_SE`` standard errors of that mean. It runs seed by seed, and a candidate that no result
on its remaining seeds could take beyond ``ACCEPT_SE`` (``reachable_z``) is not trained on them: with the default 3
seeds and 2 SE, one paired seed with a negative gain settles it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ACCEPT_SE = 2.0  # a gain counts when it exceeds this many standard errors


def beyond_accept_se(z: float) -> bool:
    """z clears ``ACCEPT_SE`` by more than float rounding: a z of exactly 2 (the cap ``reachable_z`` gives after one
    non-positive gain of 3) that summation order rounds to 2.0000000000000004 is a tie, not an acceptance, so stopping
    a re-evaluation at the cap and running it to the end decide alike."""
    return z > ACCEPT_SE * (1 + 1e-9)


ROUNDING = 1e-9  # relative: accuracies move in steps of 1/N images (1e-4 for 10k), float64 rounding is ~1e-16


def sample_std(values: Sequence[float]) -> float:
    """The sample std (ddof 1); NaN from one value, which gives no estimate (not a spread of 0). As an array: NumPy
    hands a pandas Series to its own std, whose last bits differ. Values equal but for float rounding (the same
    difference in images on every seed, reached through other sums) have no spread: a rounding residue as the
    spread made a z of hundreds of thousands."""
    if len(values) < 2:
        return math.nan
    array = np.asarray(values, np.float64)
    std = float(np.std(array, ddof=1))
    return 0.0 if std <= ROUNDING * float(np.max(np.abs(array))) else std


@dataclass(frozen=True)
class NoiseFloor:
    """The base's rewards over the noise seeds."""

    base: str
    rewards: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.rewards))

    @property
    def std(self) -> float:
        return sample_std(self.rewards)

    def gain(self, reward: float, seed_index: int) -> tuple[float, float]:
        """A single fit's gain over the base on the same seed, and its standard error."""
        return reward - self.rewards[seed_index], self.std * math.sqrt(2)


@dataclass(frozen=True)
class BaseChoice:
    """Which base augmentation won, and by how much (paired over the noise seeds)."""

    chosen: str
    means: dict[str, float]
    runner_up: str | None
    margin: float  # chosen mean − runner-up mean, in reward points
    margin_se: float  # standard error of the mean paired difference
    failed: tuple[str, ...] = ()  # bases left out of the choice: a fit of theirs failed

    def describe(self, labels: Mapping[str, str]) -> str:
        name = labels.get(self.chosen, self.chosen)
        if self.runner_up is None:
            if self.failed:
                return f"base augmentation: {name} (the only one measured: {', '.join(labels.get(b, b) for b in self.failed)} failed to train)"
            return f"base augmentation: {name} (set in the config, not measured against others)"
        z = _z(self.margin, self.margin_se)
        beyond = "beyond seed noise" if beyond_accept_se(z) else "within seed noise"
        return (f"base augmentation: {name}, mean reward {self.means[self.chosen]:.4f}; it beat "
                f"{labels.get(self.runner_up, self.runner_up)} by {self.margin:+.4f} ({z:+.1f} SE, {beyond})")  # fmt: skip


def choose_base(rewards: Mapping[str, Sequence[float]], failed: Sequence[str] = ()) -> BaseChoice:
    """The base with the highest mean reward; ``rewards[base][s]`` is its reward under noise seed s, and ``failed``
    the bases left out because a fit of theirs failed."""
    if not rewards:
        raise ValueError("no base augmentation was measured")
    means = {b: float(np.mean(r)) for b, r in rewards.items()}
    ranked = sorted(means, key=lambda b: -means[b])
    chosen = ranked[0]
    if len(ranked) == 1:
        return BaseChoice(chosen, means, None, math.nan, math.nan, tuple(failed))
    runner_up = ranked[1]
    diffs = np.asarray(rewards[chosen], np.float64) - np.asarray(rewards[runner_up], np.float64)
    return BaseChoice(chosen, means, runner_up, float(diffs.mean()), sample_std(diffs) / math.sqrt(len(diffs)), tuple(failed))


def _z(mean: float, se: float) -> float:
    """mean / SE; with no spread, ±inf for a difference and 0 for none (a tie is not a win beyond noise)."""
    return mean / se if se > 0 else math.copysign(math.inf, mean) if mean else 0.0


@dataclass(frozen=True)
class PairedGain:
    """A candidate re-trained on fresh seeds, each paired with the base on the same seed."""

    trial_id: int | None  # None: not a search trial (two strategies of the final comparison)
    gains: tuple[float, ...]  # candidate − base, per seed where both fits finished
    stopped_early: bool = False  # left untrained on its last seeds: no result there could have made it count
    candidate_failed: int = 0  # seeds where the base trained and the candidate failed to: never accepted then

    @property
    def mean(self) -> float:
        return float(np.mean(self.gains)) if self.gains else math.nan

    @property
    def se(self) -> float:
        return sample_std(self.gains) / math.sqrt(len(self.gains)) if len(self.gains) > 1 else math.nan

    @property
    def z(self) -> float:
        if not self.gains or math.isnan(self.se):
            return math.nan
        return _z(self.mean, self.se)

    @property
    def accepted(self) -> bool:
        """The gain is positive beyond ``ACCEPT_SE`` standard errors (two finished pairs at least), and the candidate
        trained wherever the base did: a policy that can break training is not recommended on its other seeds."""
        return len(self.gains) > 1 and self.mean > 0 and beyond_accept_se(self.z) and not self.candidate_failed


def paired_gain(
    trial_id: int | None, candidate: Mapping[int, float | None], base: Mapping[int, float | None], stopped_early: bool = False
) -> PairedGain:
    """Pair ``candidate[seed]`` with ``base[seed]``; seeds where either fit failed (None) or did not run are left out,
    and the candidate's failures where the base trained are counted."""
    seeds = sorted(s for s in candidate if candidate[s] is not None and base.get(s) is not None)
    failed = sum(candidate[s] is None and base.get(s) is not None for s in candidate)
    return PairedGain(trial_id, tuple(float(candidate[s] - base[s]) for s in seeds), stopped_early, failed)


def reachable_z(gains: Sequence[float], remaining: int) -> float:
    """The supremum of the z (mean / SE) that ``gains`` can reach once ``remaining`` more paired gains are added,
    whatever they are: a candidate whose ``reachable_z`` is not ``beyond_accept_se`` cannot be accepted.

    For a fixed sum of the added gains the mean is fixed and the spread is least when they are equal, so they are
    taken equal, to u. With S and Q the sum and sum of squares of ``gains``, z(u) has one stationary point, u = Q/S: the
    maximum when S > 0. Otherwise z only rises towards its limit √(m(n−1)/k) as u grows (k known gains, m added,
    n = k + m), and reaches it only when every known gain is 0. So with 3 seeds, one gain ≤ 0 caps z at 2, which
    acceptance must exceed."""
    k, m = len(gains), remaining
    if k + m < 2:
        return -math.inf  # a single pair has no SE, and is never accepted
    if k == 0:
        return math.inf
    known = np.asarray(gains, np.float64)
    if m == 0:
        return PairedGain(0, tuple(known)).z
    limit = math.sqrt(m * (k + m - 1) / k)
    total = float(known.sum())
    if total <= 0:
        return limit
    best = PairedGain(0, (*known, *[float((known**2).sum()) / total] * m)).z
    return max(best, limit)


@dataclass(frozen=True)
class OpScreen:
    """One op alone at one magnitude on top of the base, against the base on the same seed."""

    op: str
    magnitude: float
    gain: float | None  # None: the fit failed (a NaN loss counts against the op)
    se: float | None  # None: no spread to judge by (children that agree exactly under density)

    @property
    def hurts(self) -> bool:
        """Lower than the base beyond ``ACCEPT_SE`` standard errors (below it at all when there is no SE)."""
        if self.gain is None:
            return True
        return self.gain < 0 and self.gain < -ACCEPT_SE * (self.se or 0.0)


def screened_out(screens: Sequence[OpScreen]) -> tuple[str, ...]:
    """The ops that hurt at every magnitude tried, in the order first screened: a magnitude that does not hurt keeps
    the op, since the optimiser can stay near it."""
    ops = list(dict.fromkeys(s.op for s in screens))
    return tuple(op for op in ops if all(s.hurts for s in screens if s.op == op))
