"""Where fits run: in this process (one slot), or on a Dask cluster (a LocalCluster of processes, or an address).

Both have the same three calls (``slots``, ``submit``, ``next_done``), so the search has one loop. Workers receive
the dataset once (scattered) and build and trace the child once per process. Only the driver writes the trial log
and tracks runs.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass

from deepaug_pipeline.ingest.sources import LabelledImages
from deepaug_pipeline.search.records import FitOutcome, FitRequest
from deepaug_pipeline.search.trial import ChildSettings, TrialRunner

log = logging.getLogger(__name__)


class ExecutorError(RuntimeError):
    """The executor cannot start (e.g. the Dask scheduler cannot be reached)."""


@dataclass(frozen=True)
class RunnerSpec:
    """How to build a TrialRunner (plain values: it is pickled to Dask workers)."""

    settings: ChildSettings
    n_classes: int
    seed: int
    op_indices: tuple[int, ...]

    def build(self, subset: LabelledImages, pool: LabelledImages) -> TrialRunner:
        return TrialRunner(subset, pool, self.n_classes, self.settings, self.seed, self.op_indices)


class LocalExecutor:
    """Fits in this process, one at a time: ``submit`` runs the fit and returns a finished future."""

    slots = 1

    def __init__(self, subset: LabelledImages, pool: LabelledImages, spec: RunnerSpec) -> None:
        self.runner = spec.build(subset, pool)

    def submit(self, request: FitRequest) -> Future:
        future: Future = Future()
        future.set_result(self.runner.run(request))
        return future

    def next_done(self, futures) -> Future:
        return next(iter(futures))

    def outcome(self, future: Future) -> FitOutcome:
        return future.result()

    def close(self) -> None:
        pass


_RUNNERS: dict = {}  # per worker process: one traced child per runner spec


def run_on_worker(spec: RunnerSpec, request: FitRequest, subset: LabelledImages, pool: LabelledImages, threads: int | None) -> FitOutcome:
    """Dask task: one fit in a worker process (the child is built once per process and spec)."""
    from deepaug_pipeline.devices import configure_tensorflow

    configure_tensorflow(threads)
    key = repr(spec)  # the settings hold a dict: not hashable
    if key not in _RUNNERS:
        _RUNNERS[key] = spec.build(subset, pool)
    return _RUNNERS[key].run(request)


class DaskExecutor:
    """Fits in parallel on Dask workers. A fit whose worker dies is re-run once by Dask's scheduler
    (``allowed-failures``); if its second worker dies too, the fit is recorded as failed."""

    def __init__(
        self,
        subset: LabelledImages,
        pool: LabelledImages,
        spec: RunnerSpec,
        address: str | None,
        n_workers: int,
        threads_per_worker: int,
        connect_timeout: float = 10.0,
    ) -> None:
        import dask
        from distributed import Client, LocalCluster

        self.spec = spec
        self.threads = threads_per_worker
        self._cluster = None
        try:
            if address:
                self.client = Client(address, timeout=connect_timeout)
            else:
                with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
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
        # Scattered once and shared: workers keep them for every fit.
        self._subset, self._pool = self.client.scatter([subset, pool], broadcast=True)

    def submit(self, request: FitRequest):
        return self.client.submit(run_on_worker, self.spec, request, self._subset, self._pool, self.threads,
                                  key=f"fit-{request.key.replace('/', '-')}", pure=False)  # fmt: skip

    def next_done(self, futures):
        from distributed import wait

        done, _ = wait(list(futures), return_when="FIRST_COMPLETED")
        return next(iter(done))

    def outcome(self, future) -> FitOutcome:
        try:
            return future.result()
        except Exception as exc:  # noqa: BLE001 - a worker lost twice (KilledWorker), a cancelled future, ...
            return FitOutcome(status="failed", reward=0.0,
                              reason=f"the fit's worker was lost, and again on its re-run: {type(exc).__name__}: {exc}")  # fmt: skip

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
