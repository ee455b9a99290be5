"""MLflow child runs, one per trial, under the search's parent run. Failure tolerant: a tracking error
is warned about once and the search goes on (the trial log holds everything)."""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackingTarget:
    """Where child runs go: plain strings, so it crosses process boundaries (Dask workers)."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str

    @classmethod
    def from_active_run(cls) -> TrackingTarget | None:
        """The kedro-mlflow parent run of this ``kedro run``, if there is one."""
        try:
            import mlflow

            run = mlflow.active_run()
            if run is None:
                return None
            return cls(mlflow.get_tracking_uri(), run.info.experiment_id, run.info.run_id)
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"MLflow tracking is unavailable ({exc}); trials are still written to the trial log", stacklevel=2)
            return None


class TrialTracker:
    """Logs each trial as a nested MLflow run: policy params, reward, curves, status, grid PNG, JSON."""

    def __init__(self, target: TrackingTarget | None) -> None:
        self.target = target
        self.enabled = target is not None
        self._client = None

    def _warn(self, what: str, exc: Exception) -> None:
        warnings.warn(
            f"MLflow tracking failed while {what} ({type(exc).__name__}: {exc}); tracking is off for the rest of this "
            "search, which goes on: every trial is still in the trial log",
            stacklevel=3,
        )
        self.enabled = False

    def log_trial(self, record: dict, policy_params: dict, grid_png: bytes | None = None) -> str | None:
        """One child run for one finished trial; returns its run id (None if tracking is off or failed)."""
        if not self.enabled:
            return None
        try:
            from mlflow.entities import Metric, Param, RunTag
            from mlflow.tracking import MlflowClient

            if self._client is None:
                self._client = MlflowClient(tracking_uri=self.target.tracking_uri)
            client = self._client
            tid = record["trial_id"]
            run = client.create_run(
                self.target.experiment_id,
                tags={"mlflow.parentRunId": self.target.parent_run_id, "trial_id": str(tid), "status": record["status"]},
                run_name=f"trial-{tid:03d}",
            )
            rid = run.info.run_id
            metrics = [Metric("reward", float(record["reward"]), 0, 0)]
            if record.get("gain") is not None:
                metrics.append(Metric("gain_over_baseline", float(record["gain"]), 0, 0))
            for s, hist in enumerate(record.get("histories", [])):
                suffix = "" if s == 0 else f"_sample{s}"
                for key, values in hist.items():
                    metrics += [Metric(f"{key}{suffix}", float(v), 0, step) for step, v in enumerate(values) if v == v]
            params = [Param(k, str(v)) for k, v in policy_params.items()]
            tags = [RunTag("fallback", str(record.get("fallback", False)))]
            if record.get("reason"):
                tags.append(RunTag("failure_reason", str(record["reason"])[:5000]))
            for i in range(0, len(metrics), 900):
                client.log_batch(rid, metrics=metrics[i : i + 900], params=params if i == 0 else [], tags=tags if i == 0 else [])
            client.log_text(rid, json.dumps(record, indent=2, default=str), f"trial_{tid:03d}.json")
            if grid_png is not None:
                with tempfile.TemporaryDirectory() as tmp:
                    png = Path(tmp) / f"policy_grid_{tid:03d}.png"
                    png.write_bytes(grid_png)
                    client.log_artifact(rid, str(png))
            client.set_terminated(rid, "FINISHED" if record["status"] == "ok" else "FAILED")
            return rid
        except Exception as exc:  # noqa: BLE001
            self._warn(f"logging trial {record.get('trial_id')}", exc)
            return None
