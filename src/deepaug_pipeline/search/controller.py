"""The ask/tell loop: trial 0 is the no-augmentation baseline, trials 1..N are policies from scikit-optimize."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable

import numpy as np
from skopt import Optimizer

from deepaug_pipeline.augment.policy import Policy
from deepaug_pipeline.config import SearchConfig
from deepaug_pipeline.search.space import PolicySpace, to_python
from deepaug_pipeline.search.tracking import TrialTracker
from deepaug_pipeline.search.trial_log import TrialLog
from deepaug_pipeline.seeding import stream_seed

log = logging.getLogger(__name__)

BASELINE_ID = 0


def make_optimizer(space: PolicySpace, cfg: SearchConfig, seed: int) -> Optimizer:
    """RF + EI by default (as DeepAugment). ``method: random`` never leaves the initial random phase
    (skopt's own "dummy" estimator fails on scikit-learn 1.9), so both methods share one sampler."""
    random_only = cfg.method == "random"
    return Optimizer(
        space.dimensions(),
        base_estimator=cfg.surrogate,
        n_initial_points=2**31 - 1 if random_only else cfg.opt_initial_points,
        initial_point_generator="random",
        acq_func=cfg.acquisition,
        random_state=stream_seed(seed, "optimizer", cfg.method),
    )


def policy_params(names: list[str], point: list | None) -> dict:
    """The policy's dimensions as flat, plain-Python values (MLflow params); trial 0 has no point."""
    if point is None:
        return {"policy": "no augmentation"}
    return {name: to_python(v) for name, v in zip(names, point)}


def _grid_png(policy: Policy, images: np.ndarray, seed: int) -> bytes:
    import matplotlib.pyplot as plt

    from deepaug_pipeline.augment.grid import sample_grid

    fig = sample_grid(policy, images, seed=seed, max_images=6)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    plt.close(fig)
    return buf.getvalue()


def track_trial(tracker: TrialTracker, record: dict, param_names: list[str], grid_images, with_grid: bool, seed: int) -> None:
    """Log one finished trial as an MLflow child run (in the driver, or in a Dask worker)."""
    if not tracker.enabled:
        return
    point = record.get("point")
    policy = Policy.from_dict(record["policy"])
    grid = _grid_png(policy, grid_images, seed) if (with_grid and grid_images is not None and point is not None) else None
    tracker.log_trial(record, policy_params(param_names, point), grid)


class SearchLoop:
    """Runs the search against a trial log: resumes what is logged, runs what is missing.

    With a parallel executor it keeps every slot busy: a constant-liar batch ask (``cl_min``) fills the
    slots at start-up, then one new point is asked as soon as any trial finishes.
    """

    def __init__(
        self,
        space: PolicySpace,
        cfg: SearchConfig,
        seed: int,
        trial_log: TrialLog,
        run_policy: Callable[[Policy], dict] | None = None,
        tracker: TrialTracker | None = None,
        grid_images: np.ndarray | None = None,
        executor=None,
        make_job: Callable | None = None,
    ) -> None:
        self.space = space
        self.cfg = cfg
        self.seed = seed
        self.trial_log = trial_log
        self.run_policy = run_policy
        self.tracker = tracker or TrialTracker(None)
        self.grid_images = grid_images
        self.optimizer = make_optimizer(space, cfg, seed)
        self.executor = executor
        self.make_job = make_job

    @property
    def baseline_reward(self) -> float | None:
        for t in self.trial_log.trials:
            if t["trial_id"] == BASELINE_ID:
                return t["reward"]
        return None

    def describe(self, trial_id: int, policy: Policy, point: list | None, record: dict) -> dict:
        """The full log record of a finished trial."""
        base = self.baseline_reward if trial_id != BASELINE_ID else record["reward"]
        return {
            "trial_id": trial_id,
            "method": self.cfg.method,
            "policy": policy.to_dict(),
            "point": [to_python(v) for v in point] if point is not None else None,
            **record,
            "gain": (record["reward"] - base) if (base is not None and record["status"] == "ok") else None,
            "finished_at": time.time(),
        }

    def _finish(self, trial_id: int, policy: Policy, point: list | None, record: dict, track: bool = True) -> dict:
        record = self.describe(trial_id, policy, point, record)
        self.trial_log.append(record)  # durable before anything else happens
        if point is not None:
            self.optimizer.tell(record["point"], -record["reward"])
        if track:
            track_trial(self.tracker, record, self.space.dimension_names(), self.grid_images, self.cfg.track_sample_grids, self.seed)
        return record

    def _replay(self) -> None:
        told = [t for t in self.trial_log.trials if t["trial_id"] != BASELINE_ID and t.get("point") is not None]
        if told:
            self.optimizer.tell([t["point"] for t in told], [-t["reward"] for t in told])
            log.info("Resuming %s: %d logged trial(s) told to the optimizer, not re-run", self.trial_log.path, len(told))

    def _next(self, trial_ids: list[int]) -> list[tuple[int, Policy, list | None]]:
        """Policies for ``trial_ids``: the baseline for trial 0, asked points for the rest (batch: cl_min)."""
        out = [(BASELINE_ID, self.space.no_augmentation(), None)] if BASELINE_ID in trial_ids else []
        ids = [i for i in trial_ids if i != BASELINE_ID]
        if ids:
            points = self.optimizer.ask(n_points=len(ids), strategy="cl_min") if len(ids) > 1 else [self.optimizer.ask()]
            out += [(i, self.space.decode(p), p) for i, p in zip(ids, points)]
        return out

    def run(self) -> list[dict]:
        """Run until trials 0..iterations are all in the log; returns them in id order."""
        self._replay()
        todo = [i for i in range(self.cfg.iterations + 1) if i not in self.trial_log.done_ids]
        with _Progress(self.cfg.iterations + 1, len(todo), enabled=self.cfg.progress) as progress:
            progress.update_rewards(self.trial_log.trials)
            if self.executor is None:
                for trial_id in todo:
                    [(tid, policy, point)] = self._next([trial_id])
                    self._finish(tid, policy, point, self.run_policy(policy))
                    progress.update_rewards(self.trial_log.trials)
            else:
                self._run_parallel(todo, progress)
        return sorted(self.trial_log.trials, key=lambda t: t["trial_id"])

    def _run_parallel(self, todo: list[int], progress: _Progress) -> None:
        queue = list(todo)
        running: dict = {}

        def launch(n: int) -> list:
            batch, queue[:] = queue[:n], queue[n:]
            futures = []
            for tid, policy, point in self._next(batch):
                job = self.make_job(self.describe(tid, policy, point, {"status": "running", "reward": 0.0}), self.baseline_reward)
                future = self.executor.submit_async(job)
                running[future] = (tid, policy, point, job)
                futures.append(future)
            return futures

        pending = self.executor.as_completed(launch(self.executor.slots))
        for future in pending:
            tid, policy, point, job = running.pop(future)
            try:
                record = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker, a killed process, ...
                if self.executor.attempts(tid) < 2:
                    log.warning("Trial %d was lost (%s: %s); retrying it once", tid, type(exc).__name__, exc)
                    retry = self.executor.submit_async(job)
                    running[retry] = (tid, policy, point, job)
                    pending.add(retry)
                    continue
                record = {"status": "failed", "reason": f"the trial failed on a worker twice: {type(exc).__name__}: {exc}",
                          "reward": 0.0, "fallback": False, "histories": [], "wall_seconds": 0.0}  # fmt: skip
            self._finish(tid, policy, point, record, track=False)
            progress.update_rewards(self.trial_log.trials)
            for new in launch(1):
                pending.add(new)


class _Progress:
    """A rich progress bar: trial n/N, last reward, best reward, ETA."""

    def __init__(self, total: int, todo: int, enabled: bool) -> None:
        self.enabled = enabled and todo > 0
        self.total = total
        self._bar = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]search"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("last {task.fields[last]}  best {task.fields[best]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("trials", total=self.total, last="-", best="-")
        return self

    def update_rewards(self, trials: list[dict]) -> None:
        if self._bar is None or not trials:
            return
        ok = [t["reward"] for t in trials if t["status"] == "ok"]
        last = trials[-1]
        self._bar.update(
            self._task,
            completed=len(trials),
            last=f"{last['reward']:.4f}" if last["status"] == "ok" else "failed",
            best=f"{max(ok):.4f}" if ok else "-",
        )

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
