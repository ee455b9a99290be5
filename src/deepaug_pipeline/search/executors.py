"""Where trials run: in this process, or on a Dask cluster (a LocalCluster of processes, or a scheduler address).

Workers receive the dataset once (scattered), build and trace the child once per process, and open their
MLflow child runs under the search's parent run. Only the driver writes the trial log.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from deepaug_pipeline.augment.policy import Policy
from deepaug_pipeline.ingest.sources import LabelledImages
from deepaug_pipeline.search.controller import track_trial
from deepaug_pipeline.search.tracking import TrackingTarget, TrialTracker
from deepaug_pipeline.search.trial import ChildSettings, TrialRunner

log = logging.getLogger(__name__)


class ExecutorError(RuntimeError):
    """The executor cannot start (e.g. the Dask scheduler cannot be reached)."""


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs besides the scattered data (plain values: it is pickled to the worker)."""

    trial: dict  # trial_id, method, policy, point
    settings: ChildSettings
    n_classes: int
    seed: int
    op_indices: tuple[int, ...]
    tracking: TrackingTarget | None = None
    param_names: tuple[str, ...] = ()
    with_grid: bool = True
    baseline_reward: float | None = None

    @property
    def trial_id(self) -> int:
        return self.trial["trial_id"]


_RUNNERS: dict = {}  # per worker process: one traced child per (settings, seed, ops)


def _runner(job: TrialJob, subset: LabelledImages, pool: LabelledImages) -> TrialRunner:
    key = repr((job.settings, job.seed, job.op_indices, job.n_classes))  # settings hold a dict: not hashable
    if key not in _RUNNERS:
        _RUNNERS[key] = TrialRunner(subset, pool, job.n_classes, job.settings, job.seed, job.op_indices)
    return _RUNNERS[key]


def run_job_on_worker(job: TrialJob, subset: LabelledImages, pool: LabelledImages, threads: int | None) -> dict:
    """Dask task: one trial in a worker process (the child is built once per process)."""
    from deepaug_pipeline.devices import configure_tensorflow

    configure_tensorflow(threads)
    record = _runner(job, subset, pool).run(Policy.from_dict(job.trial["policy"]))
    record["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    full = {**job.trial, **record}
    if job.baseline_reward is not None and record["status"] == "ok":
        full["gain"] = record["reward"] - job.baseline_reward
    track_trial(TrialTracker(job.tracking), full, list(job.param_names), subset.x[:6], job.with_grid, job.seed)
    return record


class DaskExecutor:
    """Trials in parallel on Dask workers; a trial whose worker dies is retried once, then marked failed."""

    def __init__(
        self,
        subset: LabelledImages,
        pool: LabelledImages,
        address: str | None,
        n_workers: int,
        threads_per_worker: int,
        connect_timeout: float = 10.0,
    ) -> None:
        import dask
        from distributed import Client, LocalCluster

        self.threads = threads_per_worker
        self._cluster = None
        try:
            if address:
                self.client = Client(address, timeout=connect_timeout)
            else:
                # The driver retries a trial itself (once), so the scheduler should not retry it as well.
                with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                    self._cluster = LocalCluster(
                        n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                        dashboard_address=None, silence_logs=logging.ERROR,
                    )  # fmt: skip
                self.client = Client(self._cluster)
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(
                f"cannot reach the Dask scheduler at {address!r} within {connect_timeout:.0f} s ({exc}); "
                "check search.address, or use executor: local"
            ) from None
        workers = self.client.scheduler_info().get("workers", {})
        self.slots = max(1, sum(w.get("nthreads", 1) for w in workers.values()) // max(1, threads_per_worker))
        # Scattered once and shared: workers keep them for every trial.
        self._subset, self._pool = self.client.scatter([subset, pool], broadcast=True)
        self._attempts: dict[int, int] = {}

    def submit_async(self, job: TrialJob):
        attempt = self._attempts.get(job.trial_id, 0) + 1
        self._attempts[job.trial_id] = attempt
        return self.client.submit(
            run_job_on_worker, job, self._subset, self._pool, self.threads,
            key=f"trial-{job.trial_id}-attempt-{attempt}", pure=False,
        )  # fmt: skip

    def as_completed(self, futures) -> Iterator:
        from distributed import as_completed

        return as_completed(futures)

    def attempts(self, trial_id: int) -> int:
        return self._attempts.get(trial_id, 0)

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
