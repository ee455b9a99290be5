"""Typed records of the search: what one fit is asked to do, and what the trial log keeps of it.

Every fit of a search is one record, keyed by what it is: the base alone under a noise seed
(``baseline/standard/s0``), one op alone at one magnitude when ops are screened (``screen/rotate/0.25``), a policy
trial of the optimiser (``trial/12``), or a re-evaluation of a top candidate
or of the base on a fresh seed (``reevaluate/12/s4``, ``reevaluate/base/s4``). Under the density reward, the base's
own score on its trained children is one more record (``reference/density``), the reference of every trial. The log holds records as JSON
(``to_json``/``from_json``); everything else passes them as typed objects. ``SearchResult`` gathers a whole search.
This module imports no TensorFlow: the Kedro nodes type their outputs with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from deepaug_pipeline.search.noise import BaseChoice, NoiseFloor, OpScreen, PairedGain, screened_out

Stage = Literal["baseline", "reference", "screen", "search", "reevaluate"]
BASE_CANDIDATE = "base"  # the candidate name of the base alone in the re-evaluation stage


@dataclass(frozen=True)
class TrainedChild:
    """A child the base trained under one seed (the density reward scores policies on it): its final weights."""

    seed_index: int
    weights: tuple  # numpy arrays, in the order of model.variables


@dataclass(frozen=True)
class FitRequest:
    """One child fit: a policy on top of a base augmentation, under one seed (plain values: it is pickled).

    With ``children`` it is no fit: the policy is scored on those trained children instead (density reward)."""

    key: str
    stage: Stage
    base: str
    seed_index: int
    policy: dict  # Policy.to_dict()
    trial_id: int | None = None  # the optimiser's trial number (search), or the candidate's (reevaluate)
    point: list | None = None  # the skopt point of a search trial
    keep_weights: bool = False  # return the trained weights (the density reward's children)
    children: tuple[TrainedChild, ...] = ()

    def scoring(self, children: tuple[TrainedChild, ...]) -> FitRequest:
        return replace(self, children=children)

    @property
    def scores_only(self) -> bool:
        return bool(self.children)

    @classmethod
    def baseline(cls, base: str, seed_index: int, policy: dict, keep_weights: bool = False) -> FitRequest:
        return cls(f"baseline/{base}/s{seed_index}", "baseline", base, seed_index, policy, keep_weights=keep_weights)

    @classmethod
    def density_reference(cls, base: str, policy: dict, children: tuple[TrainedChild, ...]) -> FitRequest:
        return cls("reference/density", "reference", base, 0, policy, children=children)

    @classmethod
    def screen(cls, op: str, magnitude: float, base: str, policy: dict) -> FitRequest:
        return cls(f"screen/{op}/{magnitude:g}", "screen", base, 0, policy)

    @classmethod
    def search(cls, trial_id: int, base: str, policy: dict, point: list) -> FitRequest:
        return cls(f"trial/{trial_id}", "search", base, 0, policy, trial_id, point)

    @classmethod
    def reevaluate(cls, candidate: int | None, base: str, seed_index: int, policy: dict) -> FitRequest:
        name = BASE_CANDIDATE if candidate is None else str(candidate)
        return cls(f"reevaluate/{name}/s{seed_index}", "reevaluate", base, seed_index, policy, candidate)


@dataclass(frozen=True)
class FitOutcome:
    """What a fit produced (the trainer's side of a record)."""

    status: Literal["ok", "failed"]
    reward: float
    history: dict[str, list[float]] = field(default_factory=dict)
    epochs_used: list[int] = field(default_factory=list)
    fallback: bool = False  # best_non_overfit: no epoch passed the overfit test, the last K were used
    reason: str | None = None
    traceback: str | None = None
    wall_seconds: float = 0.0
    started_at: float = 0.0
    worker: str | None = None
    lost: bool = False  # the executor lost the fit (not the child's failure): a rerun of the search runs it again
    weights: tuple | None = None  # the trained weights, when the request asked to keep them (never logged as JSON)


@dataclass(frozen=True)
class TrialRecord:
    """One finished fit as the trial log keeps it."""

    key: str
    stage: Stage
    method: str
    base: str
    seed_index: int
    policy: dict
    trial_id: int | None
    point: list | None
    status: Literal["ok", "failed"]
    reward: float
    gain: float | None  # reward − the base's reward on the same seed (search trials)
    gain_se: float | None  # the standard error of that gain, from the noise floor
    history: dict[str, list[float]]
    epochs_used: list[int]
    fallback: bool
    reason: str | None
    traceback: str | None
    wall_seconds: float
    started_at: float
    finished_at: float
    worker: str | None = None
    lost: bool = False

    @classmethod
    def of(cls, request: FitRequest, outcome: FitOutcome, method: str, finished_at: float,
           gain: float | None = None, gain_se: float | None = None) -> TrialRecord:  # fmt: skip
        return cls(
            key=request.key, stage=request.stage, method=method, base=request.base, seed_index=request.seed_index,
            policy=request.policy, trial_id=request.trial_id, point=request.point, gain=gain, gain_se=gain_se,
            finished_at=finished_at, **{f.name: getattr(outcome, f.name) for f in fields(outcome) if f.name != "weights"},
        )  # fmt: skip

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # Epochs without a validation pass are NaN in memory and null on disk: strict JSON readers choke on NaN.
        data["history"] = {k: [None if v != v else v for v in values] for k, values in self.history.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialRecord:
        names = {f.name for f in fields(cls)}
        record = {k: v for k, v in data.items() if k in names}
        record["history"] = {k: [float("nan") if v is None else v for v in values] for k, values in data.get("history", {}).items()}
        return cls(**record)


@dataclass(frozen=True)
class SearchResult:
    """Everything a search produced: its records in log order, the base it chose, its noise, the re-evaluation."""

    method: str
    records: list[TrialRecord]
    base_choice: BaseChoice
    noise_floor: NoiseFloor
    reevaluated: list[PairedGain]  # best mean paired gain first
    log_path: str = ""  # the trial log these records are from, its fingerprint and when it was started: outputs
    log_fingerprint: str = ""  # carry all three (a fresh start under the same config is another log)
    reward: str = "retrain"  # retrain | density: what a search trial's reward is
    mlflow_run_id: str = ""  # the MLflow run that tracked this search, when tracking was on
    screens: tuple[OpScreen, ...] = ()  # screen_ops: every op alone at each magnitude
    log_created: float = 0.0

    @property
    def search_trials(self) -> list[TrialRecord]:
        return sorted((r for r in self.records if r.stage == "search"), key=lambda r: r.trial_id)

    def trial(self, trial_id: int) -> TrialRecord:
        return next(r for r in self.search_trials if r.trial_id == trial_id)

    @property
    def accepted(self) -> list[PairedGain]:
        return [p for p in self.reevaluated if p.accepted]

    @property
    def screened_out(self) -> tuple[str, ...]:
        """The ops the screen dropped from the space."""
        return screened_out(self.screens)


def ranked_search_trials(records: list[TrialRecord]) -> list[TrialRecord]:
    """Finished search trials, best single reward first; ties keep the earlier trial."""
    ok = [r for r in records if r.stage == "search" and r.ok]
    return sorted(ok, key=lambda r: (-r.reward, r.trial_id))
