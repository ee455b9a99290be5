"""The typed record of the final comparison: one final-model run per strategy and seed (no TensorFlow here).

A run is keyed by what it is (``standard+found/1``). The evaluation's run log holds runs as JSON
(``to_json``/``from_json``); everything else passes them as typed objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

# Fields a run may lack: left out of its JSON then, so a trained run's log line is what it always was.
_OPTIONAL = ("finished_at", "same_as")


@dataclass(frozen=True)
class EvaluationRun:
    """One final model for one strategy and seed: its test scores and its curves."""

    key: str  # f"{strategy}/{seed_index}"
    strategy: str
    seed_index: int
    status: str  # ok | failed (a loss that was not finite)
    test_accuracy: float
    test_error: float
    test_loss: float
    history: dict[str, list[float]]
    wall_seconds: float
    finished_at: float | None = None  # run logs written before runs carried their end time lack it
    same_as: str | None = None  # not trained twice: these are the runs of this other strategy (strategy_aliases)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k not in _OPTIONAL}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvaluationRun:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
