"""MLflow child runs, one per trial, under the search's parent run. Failure tolerant: a tracking error
is warned about once and the search goes on (the trial log holds everything). The runs are written on one
background thread, in order, so a trial's logging (and its sample grid) overlaps the next trial instead of
delaying it; the search waits for it at its end, and a run killed before that is back-filled on resume."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

    from deepaug_pipeline.augment.policy import Policy
    from deepaug_pipeline.evaluate.records import EvaluationRun
    from deepaug_pipeline.search.records import TrialRecord
    from deepaug_pipeline.search.space import PolicySpace

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


def curve_metrics(history: dict[str, list[float]], timestamp: int) -> list:
    """Per-epoch curves as MLflow metrics with the epoch as step (epochs without a validation pass are NaN: left out)."""
    from mlflow.entities import Metric

    return [Metric(key, float(v), timestamp, step) for key, values in history.items() for step, v in enumerate(values) if v == v]


def log_batches(client, run_id: str, metrics: list, params: list = (), tags: list = ()) -> None:
    """Metrics in batches MLflow accepts (at most 1000 entries a call); params and tags go with the first batch, which
    is made with no metrics too."""
    for i in range(0, max(len(metrics), 1), 900):
        client.log_batch(run_id, metrics=metrics[i : i + 900], params=list(params) if i == 0 else [], tags=list(tags) if i == 0 else [])


def log_evaluation_runs(runs: list[EvaluationRun]) -> None:
    """Each (strategy, seed) of an evaluation as a child run of this ``kedro run``'s MLflow run, under the same metric
    names in every run (``test_accuracy``, ``test_error``, ``test_loss``, the per-epoch curves), so MLflow's charts
    compare strategies. A strategy that reused another's runs is tagged ``same_as``. Never raises."""
    target = TrackingTarget.from_active_run()
    if target is None:
        return
    try:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=target.tracking_uri)
        for r in runs:
            finished_at = r.finished_at or time.time()  # logs written before runs carried their end time
            finished = int(finished_at * 1000)
            tags = {"mlflow.parentRunId": target.parent_run_id, "strategy": r.strategy, "seed_index": str(r.seed_index),
                    "status": r.status, **({"same_as": r.same_as} if r.same_as else {})}  # fmt: skip
            run = client.create_run(target.experiment_id, start_time=int((finished_at - r.wall_seconds) * 1000),
                                    tags=tags, run_name=f"{r.strategy}-s{r.seed_index}")  # fmt: skip
            scores = {"test_accuracy": r.test_accuracy, "test_error": r.test_error, "test_loss": r.test_loss}
            metrics = [Metric(k, float(v), finished, 0) for k, v in scores.items() if v == v]  # a NaN score is no metric
            log_batches(client, run.info.run_id, metrics + curve_metrics(r.history, finished))
            client.set_terminated(run.info.run_id, "FINISHED" if r.ok else "FAILED", end_time=finished)
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"MLflow tracking failed while logging the evaluation runs ({type(exc).__name__}: {exc}); "
                      "they are in the evaluation log and the report", stacklevel=2)  # fmt: skip


def tag_active_run(tags: dict[str, str]) -> str | None:
    """Tag the MLflow run of this ``kedro run`` (e.g. evaluate's, with the search run it used); returns its id, or
    None when tracking is off. A tracking failure is warned about, never raised."""
    target = TrackingTarget.from_active_run()
    if target is None:
        return None
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=target.tracking_uri)
        for key, value in tags.items():
            client.set_tag(target.parent_run_id, key, value)
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"MLflow tracking failed while tagging run {target.parent_run_id} ({type(exc).__name__}: {exc})", stacklevel=2)
    return target.parent_run_id


def log_missing_params(params: dict) -> None:
    """Log those of ``params`` the MLflow run of this ``kedro run`` lacks, as kedro-mlflow logs a node's parameters.
    The search logs the settings its splits were made with: a run that reuses the splits runs no ingest node for
    kedro-mlflow to log them from. A tracking failure is warned about, never raised."""
    target = TrackingTarget.from_active_run()
    if target is None or not params:
        return
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=target.tracking_uri)
        logged = client.get_run(target.parent_run_id).data.params
        for key, value in params.items():
            if key not in logged:
                client.log_param(target.parent_run_id, key, value)
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"MLflow tracking failed while logging parameters on run {target.parent_run_id} ({type(exc).__name__}: {exc})", stacklevel=2)


class TrialTracker:
    """Logs each trial as a nested MLflow run: policy params, reward, curves, status, grid PNG, JSON."""

    def __init__(self, target: TrackingTarget | None, trial_log: str = "") -> None:
        self.target = target
        self.trial_log = trial_log  # TrialLog.identity: every child run is tagged with the log it belongs to
        self.enabled = target is not None
        self._client = None
        self._writer: ThreadPoolExecutor | None = None
        self._inherited: dict[str, str] | None = None

    def submit(self, log_call: Callable[[], object]) -> None:
        """Run a logging call on the tracker's background thread, after those submitted before it."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-tracking")
        self._writer.submit(log_call)

    def flush(self) -> None:
        """Wait until every submitted logging call is done."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.target.tracking_uri)
        return self._client

    def untracked(self, records: list[TrialRecord]) -> list[TrialRecord]:
        """After a crash, make MLflow agree with the trial log, the source of truth: an earlier parent run of this log
        still RUNNING (its process was killed) is marked KILLED, and so is any child run it left open; returns the
        logged records that have no finished child run."""
        if not self.enabled:
            return []
        try:
            client = self.client()
            current = self.target.parent_run_id
            client.set_tag(current, "trial_log", self.trial_log)  # found by the next run even if it dies before a fit
            runs = client.search_runs([self.target.experiment_id], f"tags.trial_log = '{self.trial_log}'", max_results=50000)
            tracked = set()
            for run in runs:
                parent = run.data.tags.get("mlflow.parentRunId")
                if run.info.run_id == current or parent == current:
                    continue
                if run.info.status == "RUNNING":
                    client.set_tag(run.info.run_id, "ended_by", "a later run of the same trial log found it still running")
                    client.set_terminated(run.info.run_id, "KILLED")
                    log.info("MLflow run %s of an earlier, killed search on this trial log: marked KILLED", run.info.run_id)
                elif parent is not None:
                    tracked.add(run.data.tags.get("key"))
            return [r for r in records if r.key not in tracked]
        except Exception as exc:  # noqa: BLE001
            self._warn("reconciling MLflow with the trial log", exc)
            return []

    def _warn(self, what: str, exc: Exception) -> None:
        warnings.warn(
            f"MLflow tracking failed while {what} ({type(exc).__name__}: {exc}); tracking is off for the rest of this "
            "search, which goes on: every trial is still in the trial log",
            stacklevel=3,
        )
        self.enabled = False

    def _inherited_tags(self) -> dict[str, str]:
        """Who ran it and from what, as the parent run says (MLflow's UI shows "Created by" and "Source" from them)."""
        if self._inherited is None:
            tags = self.client().get_run(self.target.parent_run_id).data.tags
            self._inherited = {k: v for k, v in tags.items() if k in ("mlflow.user", "mlflow.source.name", "mlflow.source.type")}
        return self._inherited

    def log_parent(self, metrics: dict[str, float], tags: dict[str, str] | None = None, step: int = 0) -> None:
        """Numbers and words on the search's own run while it runs (its summary metrics only come at the end)."""
        if not self.enabled:
            return
        try:
            from mlflow.entities import Metric, RunTag

            now = int(time.time() * 1000)
            log_batches(self.client(), self.target.parent_run_id, [Metric(k, float(v), now, step) for k, v in metrics.items()],
                        tags=[RunTag(k, v) for k, v in (tags or {}).items()])  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            self._warn("logging the search's progress", exc)

    def log_trial(self, record: TrialRecord, params: dict, summary: str = "", grid: Callable[[], Figure] | None = None,
                  backfilled: bool = False, gain_reference: str = "") -> str | None:  # fmt: skip
        """One child run for one finished fit, at the fit's own start and end times; returns its run id (None if
        tracking is off or failed). ``summary`` is the policy in one line; ``grid`` draws its sample grid;
        ``gain_reference`` says what its gain is over."""
        if not self.enabled:
            return None
        try:
            from mlflow.entities import Metric, Param, RunTag

            client = self.client()
            tags = {"mlflow.parentRunId": self.target.parent_run_id, "key": record.key, "stage": record.stage,
                    "base": record.base, "seed_index": str(record.seed_index), "status": record.status,
                    "trial_log": self.trial_log, "policy": summary}  # fmt: skip
            tags |= self._inherited_tags()
            if record.gain is not None and gain_reference:
                tags["gain_reference"] = gain_reference
            if backfilled:  # logged by a run that was killed before it tracked the fit
                tags["backfilled"] = "true"
            if record.trial_id is not None:
                tags["trial_id"] = str(record.trial_id)
            started, finished = int(record.started_at * 1000), int(record.finished_at * 1000)
            run = client.create_run(self.target.experiment_id, start_time=started, tags=tags, run_name=record.key.replace("/", "-"))
            rid = run.info.run_id
            metrics = [Metric("reward", float(record.reward), finished, 0)]
            if record.gain is not None:
                metrics.append(Metric("gain_over_baseline", float(record.gain), finished, 0))
                if record.gain_se:
                    metrics += [Metric("gain_se", float(record.gain_se), finished, 0),
                                Metric("gain_in_se", float(record.gain / record.gain_se), finished, 0)]  # fmt: skip
            metrics += curve_metrics(record.history, finished)
            run_tags = [RunTag("fallback", str(record.fallback))]
            if record.reason:
                run_tags.append(RunTag("failure_reason", str(record.reason)[:5000]))
            param_list = [Param(k, str(v)) for k, v in params.items()]
            log_batches(client, rid, metrics, param_list, run_tags)
            client.log_dict(rid, record.to_json(), "trial.json")
            if grid is not None:
                client.log_figure(rid, grid(), "policy_grid.png", save_kwargs={"dpi": 100})  # its 9 pt labels: 12 px
            client.set_terminated(rid, "FINISHED" if record.ok else "FAILED", end_time=finished)
            return rid
        except Exception as exc:  # noqa: BLE001
            self._warn(f"logging {record.key}", exc)
            return None


def policy_params(space: PolicySpace, policy: Policy) -> dict:
    """The policy's dimensions as flat, plain-Python values (MLflow params), the same keys for every fit;
    magnitudes to 3 digits, as a reader compares them."""
    from deepaug_pipeline.search.space import to_python

    values = (to_python(v) for v in space.encode(policy))
    return {name: round(v, 3) if isinstance(v, float) else v for name, v in zip(space.dimension_names(), values)}


def policy_summary(policy: Policy) -> str:
    """The policy in one line (an MLflow tag): ``rotate 0.31 → invert 0.20 | …``, or "base alone"."""
    return "base alone" if policy.p_none == 1.0 else " | ".join(policy.describe())


def _grid(policy: Policy, images: np.ndarray, seed: int) -> Figure:
    from deepaug_pipeline.augment.grid import sample_grid

    return sample_grid(policy, images, seed=seed, max_images=6)


def track_trial(tracker: TrialTracker, record: TrialRecord, space: PolicySpace, grid_images, with_grid: bool, seed: int,
                backfilled: bool = False, gain_reference: str = "") -> None:  # fmt: skip
    """Log one finished fit as an MLflow child run, with a sample grid for policy trials, on the tracker's
    background thread (``tracker.flush()`` waits for it)."""
    if not tracker.enabled:
        return
    from deepaug_pipeline.augment.policy import Policy

    policy = Policy.from_dict(record.policy)
    with_grid = with_grid and grid_images is not None and record.stage == "search"
    grid = (lambda: _grid(policy, grid_images, seed)) if with_grid else None
    tracker.submit(lambda: tracker.log_trial(record, policy_params(space, policy), policy_summary(policy), grid, backfilled, gain_reference))
