"""Where fits run: in this process (one slot), or on a Dask cluster (a LocalCluster of processes, or an address).

Both have the same three calls (``slots``, ``submit``, ``next_done``), so the search has one loop. Workers receive
the dataset once (scattered) and build and trace the child once per process. Only the driver writes the trial log
and tracks runs.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from deepaug_pipeline.config import ChildConfig
from deepaug_pipeline.data import LabelledImages
from deepaug_pipeline.errors import UserError
from deepaug_pipeline.search.records import FitOutcome, FitRequest
from deepaug_pipeline.search.trial import TrialRunner

log = logging.getLogger(__name__)


class ExecutorError(UserError, RuntimeError):
    """The executor cannot start (e.g. the Dask scheduler cannot be reached)."""


@dataclass(frozen=True)
class RunnerSpec:
    """How to build a TrialRunner (plain values: it is pickled to Dask workers)."""

    child: ChildConfig
    n_classes: int
    seed: int
    op_indices: tuple[int, ...]
    data_hash: str = ""  # the data's content: a worker that outlives a search never reuses another's images
    # The seeds the search trains under (base noise and re-evaluation), drawn up front; not in repr, the key of a
    # Dask worker's runner, since a resumed search with more re-evaluation seeds can use the runner it has.
    n_seeds: int = field(default=1, repr=False)

    def build(self, subset: LabelledImages, pool: LabelledImages) -> TrialRunner:
        return TrialRunner(subset, pool, self.n_classes, self.child, self.seed, self.op_indices, self.n_seeds)


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
_RUNNER_LOCK = threading.Lock()  # one fit at a time per process: fits share the runner's model and optimizer


def run_on_worker(spec: RunnerSpec, request: FitRequest, subset: LabelledImages, pool: LabelledImages, threads: int | None) -> FitOutcome:
    """Dask task: one fit in a worker process (the child is built once per process and spec)."""
    from deepaug_pipeline.devices import configure_tensorflow

    with _RUNNER_LOCK:
        configure_tensorflow(threads)
        key = repr(spec)  # the child config holds a dict: not hashable
        if key not in _RUNNERS:
            # One search's runner at a time: a long-lived worker that serves search after search would otherwise
            # keep every earlier one's traced model and dataset until it ran out of memory.
            _RUNNERS.clear()
            _RUNNERS[key] = spec.build(subset, pool)
        return _RUNNERS[key].run(request)


TRIM_THRESHOLD = "MALLOC_TRIM_THRESHOLD_"


def local_worker_environ() -> dict:
    """What a LocalCluster's worker processes get set before they start: Dask's defaults without its
    ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets glibc's trim threshold so that workers hand freed memory back. Setting it also freezes glibc's mmap
    threshold, so every buffer above 128 KiB that TensorFlow frees goes back to the kernel and the next one is
    page-faulted in again: default-child fits spent 44 % of their CPU time in the kernel and took 2.3-3.4 times as long
    as without it (benchmarks/bench_dask.py, README "Running trials on a Dask cluster")."""
    import dask
    import distributed  # noqa: F401 - registers distributed's config defaults with dask

    return {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items() if k != TRIM_THRESHOLD}


@contextmanager
def local_worker_environment() -> Iterator[None]:
    """Hold this around a LocalCluster's whole life: its workers start with ``local_worker_environ()``, and this
    process's environment is as it was once the block ends.

    A nanny spawns its worker (at start, and again after a death) from this process's environment, after writing its
    pre-spawn variables into it. So the trim threshold must be out of the environment while the cluster lives (set by
    the shell, or by an earlier default LocalCluster's nannies), and the variables the nannies write (OMP, MKL and
    OpenBLAS thread caps of 1, and the PYTHONHASHSEED Dask adds) must not outlive the cluster: a process started later
    would inherit them."""
    import dask

    environ = local_worker_environ()
    saved = {name: os.environ.get(name) for name in (*environ, TRIM_THRESHOLD, "PYTHONHASHSEED")}
    if saved[TRIM_THRESHOLD] is not None:
        log.info("%s=%s is set here; the Dask workers start without it (it slows TensorFlow's fits 2-3x)",
                 TRIM_THRESHOLD, saved[TRIM_THRESHOLD])  # fmt: skip
        del os.environ[TRIM_THRESHOLD]
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class DaskExecutor:
    """Fits in parallel on Dask workers, one per worker process at a time (a process's fits share its runner). A
    fit that does not come back (its worker died) is a ``lost`` outcome: the search loop submits it once more, and
    if it is lost again, logs it as lost so that a rerun runs it again. Any other error on a worker is raised here,
    as it would be in this process.

    Dask's own re-run (``allowed-failures``) does not fit here: when a worker dies, the scheduler cancels the
    re-run and every later fit for "lost dependencies" (the scattered dataset), so the executor scatters the data
    again and the loop resubmits (seen with this project's pinned distributed on a LocalCluster). With
    ``allowed-failures: 0`` a death is reported at once."""

    def __init__(
        self,
        subset: LabelledImages,
        pool: LabelledImages,
        spec: RunnerSpec,
        address: str | None,
        n_workers: int,
        threads_per_worker: int,
        connect_timeout: float = 10.0,
        worker_timeout: float = 60.0,
    ) -> None:
        import dask
        from distributed import Client, LocalCluster, as_completed

        self.spec = spec
        self.threads = threads_per_worker
        self._cluster = None
        self._environment = ExitStack()  # the LocalCluster's worker environment, held until close()
        where = f"the Dask scheduler at search.address {address!r}" if address else "a local Dask cluster"
        try:
            if address:
                self.client = Client(address, timeout=connect_timeout)
            else:
                self._environment.enter_context(local_worker_environment())
                with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                    self._cluster = LocalCluster(
                        n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                        dashboard_address=None, silence_logs=logging.ERROR,
                    )  # fmt: skip
                self.client = Client(self._cluster)
        except (OSError, TimeoutError, ValueError) as exc:  # ValueError: an address Dask cannot parse
            self._environment.close()
            problem = f"cannot reach {where} within {connect_timeout:.0f} s" if address else f"cannot start {where}"
            raise ExecutorError(f"{problem} ({type(exc).__name__}: {exc}); check search.address, or use executor: "
                                "local") from None  # fmt: skip
        try:  # a scheduler started beside its workers (README) may have none yet
            self.client.wait_for_workers(1, timeout=worker_timeout)
        except TimeoutError:
            self.close()
            raise ExecutorError(f"{where} has no workers after {worker_timeout:.0f} s: start some "
                                f"(dask worker {address or '<scheduler address>'}), or use executor: local") from None  # fmt: skip
        # Scattered once and shared: workers keep them for every fit (again after a worker death loses them).
        self._data = (subset, pool)
        self._scatter()
        self._done = as_completed()  # every submitted future, yielded as it finishes

    @property
    def slots(self) -> int:
        """Worker processes now (asked at every launch): workers that join later get fits, and a process runs one
        fit at a time however many threads it has."""
        return max(1, len(self.client.nthreads()))

    def _scatter(self) -> None:
        self._subset, self._pool = self.client.scatter(list(self._data), broadcast=True)
        self._data_lost = False

    def submit(self, request: FitRequest):
        if self._data_lost:
            self._scatter()
        # Dask names the task (pure=False: a fresh key per call), so two searches on one scheduler never share one.
        future = self.client.submit(run_on_worker, self.spec, request, self._subset, self._pool, self.threads, pure=False)
        self._done.add(future)
        return future

    def next_done(self, futures):
        # Finished, failed or cancelled alike; one whose outcome was taken directly (the density reference) is passed.
        return next(f for f in self._done if f in futures)

    def outcome(self, future) -> FitOutcome:
        from concurrent.futures import CancelledError

        from distributed.scheduler import KilledWorker

        try:
            return future.result()
        except (KilledWorker, CancelledError) as exc:  # a dead worker, or a fit cancelled for its lost dependencies
            self._data_lost = True  # a dead worker takes the scattered dataset's keys with it: scatter before resubmitting
            return FitOutcome(status="failed", reward=0.0, lost=True,
                              reason=f"the fit did not come back from its Dask worker ({type(exc).__name__}: {exc})")  # fmt: skip

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._environment.close()
