"""The search loop, in three stages (four with the op screen) over one executor (in-process or Dask):

1. **baseline**: the base augmentation alone under ``noise_seeds`` seeds (with ``base_augmentation: auto``: none,
   pad + crop and crop + flip, and the best one is taken). Its spread is the noise floor.
   *screen* (``screen_ops``): each op of the space alone at ``SCREEN_MAGNITUDES``, on seed 0 against the base;
   ops that hurt beyond 2 SE at every magnitude leave the space before the optimiser starts.
2. **search**: policies from scikit-optimize, each trained once (seed 0) on top of the chosen base; its gain over the
   base on the same seed is reported in reward points and in standard errors. Under ``reward: density`` a policy is
   not trained: it is scored on the base's own trained children (one per noise seed), on their held-out images
   transformed by base + policy, and its gain is over the base alone scored the same way (``reference/density``).
3. **reevaluate**: the top ``reevaluate_top`` policies and the base, re-trained on ``reevaluate_seeds`` fresh seeds
   and paired seed by seed; a policy counts only when its mean paired gain exceeds 2 standard errors, and one that
   can no longer get there is not trained on the seeds left (``reevaluate_stop_early``).

Every finished fit is appended to the trial log before anything else happens, so a rerun resumes at any stage.
"""

from __future__ import annotations

import functools
import logging
import time
import zipfile

import numpy as np

from deepaug_pipeline.augment.baselines import BASE_LABELS
from deepaug_pipeline.config import SearchConfig
from deepaug_pipeline.errors import UserError
from deepaug_pipeline.run_log import ChildWeights, TrialLog
from deepaug_pipeline.search.noise import (
    ACCEPT_SE,
    BaseChoice,
    NoiseFloor,
    OpScreen,
    PairedGain,
    beyond_accept_se,
    choose_base,
    paired_gain,
    reachable_z,
    screened_out,
)
from deepaug_pipeline.search.records import FitOutcome, FitRequest, SearchResult, TrainedChild, TrialRecord, ranked_search_trials
from deepaug_pipeline.search.space import PolicySpace, policy_optimizer, to_python
from deepaug_pipeline.search.tracking import TrialTracker, track_trial

log = logging.getLogger(__name__)

AUTO_BASES = ("none", "crop", "standard")
SCREEN_MAGNITUDES = (0.25, 0.75)  # the middle of each half of an op's range: mild and strong


class SearchError(UserError, RuntimeError):
    """The search cannot go on (e.g. the base alone fails to train); the message says why."""


class SearchLoop:
    """Runs the search against a trial log: resumes what is logged, runs what is missing."""

    def __init__(
        self,
        space: PolicySpace,
        cfg: SearchConfig,
        seed: int,
        trial_log: TrialLog,
        executor,
        tracker: TrialTracker | None = None,
        grid_images: np.ndarray | None = None,
    ) -> None:
        self.space = space
        self.cfg = cfg
        self.seed = seed
        self.trial_log = trial_log
        self.executor = executor
        self.tracker = tracker or TrialTracker(None)
        self.grid_images = grid_images
        self.optimizer = policy_optimizer(space, cfg, seed)
        # A fit the executor lost (a Dask worker died twice) is not a result: it runs again.
        logged = (TrialRecord.from_json(r) for r in trial_log.trials)
        self.records: dict[str, TrialRecord] = {r.key: r for r in logged if not r.lost}
        self.lost: list[TrialRecord] = []  # lost in this run, after its one retry
        self.floor: NoiseFloor | None = None
        self._identity = space.no_augmentation().to_dict()
        self.density = cfg.reward == "density"
        self.children: tuple[TrainedChild, ...] = ()  # density: the chosen base's trained children
        self.reference: TrialRecord | None = None  # density: the base alone scored on them
        self.weights = ChildWeights(trial_log)

    # ----------------------------------------------------------------- driving the executor
    def _drive(self, next_requests, describe) -> None:
        """Keep every executor slot busy with ``next_requests(n)`` until it returns nothing more."""
        running: dict = {}

        def launch(n: int) -> None:
            for request in next_requests(n):
                running[self.executor.submit(request)] = request

        launch(self.executor.slots)
        retried: set[str] = set()
        while running:
            future = self.executor.next_done(running)
            request = running.pop(future)
            outcome = self.executor.outcome(future)
            if outcome.lost and request.key not in retried:  # a lost worker or memory, not the child's failure: once more
                log.warning("%s was lost: %s; running it again", request.key, outcome.reason)
                retried.add(request.key)
                running[self.executor.submit(request)] = request
                continue
            self._finish(request, outcome, describe)
            # A finished fit may make several more ready (re-evaluation); workers that left may leave fewer slots than
            # fits in flight, and a negative count would slice all but one of the queue into one batch.
            launch(max(0, self.executor.slots - len(running)))
        if self.lost:  # after the stage's other fits: all of them are logged and kept
            raise SearchError(
                f"{len(self.lost)} fit(s) were lost twice each, to a Dask worker that died or to a device out of "
                f"memory ({'; '.join(f'{r.key}: {r.reason}' for r in self.lost[:3])}). They are logged as lost, not as "
                "results: rerun the search to run them again, and every finished fit is kept. If it keeps happening, "
                "check the workers' memory (search.n_workers, search.threads_per_worker) or the child's size "
                "(search.child.batch_size, search.child.model)."
            )

    def _run_all(self, requests: list[FitRequest], describe) -> None:
        queue = [r for r in requests if r.key not in self.records]

        def next_requests(n: int) -> list[FitRequest]:
            batch, queue[:] = queue[:n], queue[n:]
            return batch

        self._drive(next_requests, describe)

    def _gain(self, request: FitRequest, outcome: FitOutcome) -> tuple[float | None, float | None]:
        if request.stage not in ("screen", "search") or outcome.status != "ok":
            return None, None
        if not self.density:
            return self.floor.gain(outcome.reward, request.seed_index)
        # Paired child by child with the base alone on the same held-out images; the SE is over the children.
        diffs = np.subtract(outcome.history["density_accuracy"], self.reference.history["density_accuracy"])
        pair = PairedGain(None, tuple(float(d) for d in diffs))
        return pair.mean, (pair.se if pair.se > 0 else None)  # one child, or children that agree exactly: no SE

    def _finish(self, request: FitRequest, outcome: FitOutcome, describe) -> TrialRecord:
        gain, gain_se = self._gain(request, outcome)
        record = TrialRecord.of(request, outcome, self.cfg.method, time.time(), gain, gain_se)
        if outcome.weights is not None:
            self.weights.save(record.key, outcome.weights)  # before the record: a logged child always has its weights
        self.trial_log.append(record.to_json())  # durable before anything else happens
        if record.lost:
            # Not a result: a base left out of the choice, an op screened out, a trial told to the optimiser as
            # reward 0 or a re-evaluation seed counted as failed would each change the search's answer.
            log.info("%s", describe(record))
            self.lost.append(record)
            return record
        self.records[record.key] = record
        log.info("%s", describe(record))  # after the record joins the others: the line's "best" counts it
        # Tracked on the tracker's thread while the optimiser refits its surrogate here.
        track_trial(self.tracker, record, self.space, self.grid_images, self.cfg.track_sample_grids, self.seed,
                    gain_reference=self._gain_reference(record))
        if request.stage == "search":
            self.optimizer.tell(request.point, -record.reward)
            self._track_progress()
        return record

    def _gain_reference(self, record: TrialRecord) -> str:
        """What a fit's gain is over, in words (an MLflow tag): the parent run's baseline_reward is a mean over seeds."""
        if self.density:
            return f"{record.base} alone, scored on the same {self.cfg.noise_seeds} trained children"
        return f"{record.base} alone, seed {record.seed_index}"

    def _track_progress(self) -> None:
        """The parent run's running count and best trial, so a search is reviewable while it runs. Named apart from
        the closing metrics (trials_done, best_reward, ...), which kedro-mlflow logs at step 0: MLflow shows a
        metric's value at its highest step, and a progress point would outrank the closing value."""
        if not self.tracker.enabled:
            return
        trials = [r for r in self.records.values() if r.stage == "search"]
        progress = {"trials_so_far": float(len(trials))}
        best = max((r for r in trials if r.ok), key=lambda r: r.reward, default=None)
        if best is not None:
            progress |= {"best_reward_so_far": best.reward, **({"best_trial_gain_so_far": best.gain} if best.gain is not None else {})}
        self.tracker.submit(functools.partial(self.tracker.log_parent, progress, step=len(trials)))

    # ----------------------------------------------------------------- stages
    def _baseline(self) -> tuple[BaseChoice, NoiseFloor]:
        cfg = self.cfg
        bases = AUTO_BASES if cfg.base_augmentation == "auto" else (cfg.base_augmentation,)
        requests = [FitRequest.baseline(b, s, self._identity, keep_weights=self.density) for b in bases for s in range(cfg.noise_seeds)]

        def describe(r: TrialRecord) -> str:
            return f"baseline  {BASE_LABELS[r.base]}, seed {r.seed_index + 1}/{cfg.noise_seeds}  {_reward_text(r)}  {r.wall_seconds:.1f} s"

        self._run_all(requests, describe)
        rewards, failures = {}, []
        for b in bases:
            runs = [self.records[FitRequest.baseline(b, s, self._identity).key] for s in range(cfg.noise_seeds)]
            if all(r.ok for r in runs):
                rewards[b] = [r.reward for r in runs]
            else:
                failures.append(next(f"{BASE_LABELS[b]}: {r.reason}" for r in runs if not r.ok))
        if not rewards:
            raise SearchError(
                f"the child failed to train with the base augmentation alone, so there is nothing to compare policies "
                f"with ({'; '.join(failures)}). Check search.child.model, search.child.model_options and search.child.learning_rate."
            )
        for failure in failures:
            log.warning("Base augmentation left out of the choice, a fit failed: %s", failure)
        choice = choose_base(rewards, [b for b in bases if b not in rewards])
        floor = NoiseFloor(choice.chosen, tuple(rewards[choice.chosen]))
        log.info("%s; noise floor (std over %d seeds) %.4f", choice.describe(BASE_LABELS), len(floor.rewards), floor.std)
        return choice, floor

    def _density_reference(self) -> None:
        """Density: load the chosen base's trained children and score the base alone on them (the trials' reference)."""
        keys = [FitRequest.baseline(self.floor.base, s, self._identity).key for s in range(self.cfg.noise_seeds)]
        start_afresh = (f"To start afresh, move the trial log {self.trial_log.path} and {self.weights.directory} "
                        "aside (or set search.fresh_start: true, which keeps them under a new name).")  # fmt: skip
        try:
            self.children = tuple(TrainedChild(s, self.weights.load(k)) for s, k in enumerate(keys))
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # missing, or cut short by a machine crash
            raise SearchError(
                f"the density reward scores policies on the base's trained children, but their weights cannot be read "
                f"from {self.weights.directory} ({type(exc).__name__}: {exc}). Restore them. {start_afresh}"
            ) from None
        request = FitRequest.density_reference(self.floor.base, self._identity, self.children)
        if request.key not in self.records:
            outcome = self.executor.outcome(self.executor.submit(request))
            if outcome.status != "ok":  # not logged: the next run tries again instead of being blocked by it
                raise SearchError(f"the base alone could not be scored on its trained children: {outcome.reason}")
            self._finish(request, outcome, lambda r: f"density reference  {BASE_LABELS[r.base]} alone  {_reward_text(r)}  {r.wall_seconds:.1f} s")
        self.reference = self.records[request.key]

    def _screen(self) -> tuple[OpScreen, ...]:
        """Each op alone at each screen magnitude against the base on seed 0 (scored as the trials are); the ops
        that hurt at every magnitude leave the space, and the optimiser starts on what is left."""
        ops = [o for o in self.space.op_names if o != "identity"]
        tried = [(o, m) for o in ops for m in SCREEN_MAGNITUDES]
        requests = [FitRequest.screen(o, m, self.floor.base, self.space.single_op(o, m).to_dict()).scoring(self.children)
                    for o, m in tried]  # fmt: skip

        def describe(r: TrialRecord) -> str:
            op = r.policy["sub_policies"][0][0]
            return f"screen  {op['op']} {op['magnitude']:g}  {_reward_text(r)}  {r.wall_seconds:.1f} s"

        self._run_all(requests, describe)
        records = [self.records[r.key] for r in requests]
        screens = tuple(OpScreen(o, m, r.gain if r.ok else None, r.gain_se) for (o, m), r in zip(tried, records))
        dropped = screened_out(screens)
        kept = [o for o in ops if o not in dropped]
        log.info("Op screen: %s", f"dropped {', '.join(dropped)}; searching {', '.join(kept) or 'nothing'}"
                 if dropped else f"every op kept ({len(ops)})")  # fmt: skip
        self.space = self.space.without(dropped)
        if any(o != "identity" for o in self.space.op_names):  # else nothing is left to search (run says so)
            self.optimizer = policy_optimizer(self.space, self.cfg, self.seed)
        return screens

    def _search(self) -> None:
        cfg = self.cfg
        told = [r for r in self.records.values() if r.stage == "search"]
        if told:
            self.optimizer.tell([r.point for r in told], [-r.reward for r in told])
            log.info("Resuming %s: %d logged trial(s) told to the optimizer, not re-run", self.trial_log.path, len(told))
        queue = [i for i in range(1, cfg.n_iterations + 1) if f"trial/{i}" not in self.records]
        beyond = sorted(r.trial_id for r in told if r.trial_id > cfg.n_iterations)
        if beyond:  # computed work is kept: a shorter search than the log's is not a reason to drop trials
            log.warning("The trial log holds %d policy trials, search.iterations asks for %d: all %d are kept and "
                        "ranked (trials %d to %d included). For a search of %d trials, start afresh (fresh_start: true)",
                        len(told), cfg.n_iterations, len(told), beyond[0], beyond[-1], cfg.n_iterations)  # fmt: skip

        handed_out: dict[str, list] = {}  # this run's trials and their points

        def next_requests(n: int) -> list[FitRequest]:
            ids, queue[:] = queue[:n], queue[n:]
            if not ids:
                return []
            # Trials still training (not told yet, not lost): the optimiser must not hand their points out again.
            lost = {r.key for r in self.lost}
            pending = [p for key, p in handed_out.items() if key not in self.records and key not in lost]
            points = self.optimizer.ask_for(ids, pending)
            handed_out.update((f"trial/{i}", p) for i, p in zip(ids, points))
            return [FitRequest.search(i, self.floor.base, self.space.decode(p).to_dict(), [to_python(v) for v in p]).scoring(self.children)
                    for i, p in zip(ids, points)]  # fmt: skip

        def describe(r: TrialRecord) -> str:
            best = max((t.reward for t in self.records.values() if t.stage == "search" and t.ok), default=float("nan"))
            return f"trial {r.trial_id}/{cfg.n_iterations}  {_reward_text(r)}  best {best:.4f}  {r.wall_seconds:.1f} s"

        self._drive(next_requests, describe)

    def _reevaluate(self) -> list[PairedGain]:
        """Seed by seed: each fresh seed trains the base and every candidate that can still be accepted. With
        ``reevaluate_stop_early`` a candidate leaves once no result on its remaining seeds could take its mean paired
        gain beyond ``ACCEPT_SE`` (the accepted set is the one the full re-evaluation would give)."""
        cfg = self.cfg
        top = ranked_search_trials(list(self.records.values()))[: cfg.reevaluate_top]
        seeds = list(range(cfg.noise_seeds, cfg.n_seeds))  # fresh: neither noise nor search seeds
        policies = {None: self._identity} | {t.trial_id: t.policy for t in top}
        base = self.floor.base

        def record(candidate: int | None, seed: int) -> TrialRecord | None:
            return self.records.get(FitRequest.reevaluate(candidate, base, seed, policies[candidate]).key)

        def rewards(candidate: int | None, upto: int) -> dict[int, float | None]:
            """Finished fits on the seeds before index ``upto``: reward, or None for a failed fit."""
            found = {s: record(candidate, s) for s in seeds[:upto]}
            return {s: r.reward if r.ok else None for s, r in found.items() if r is not None}

        def wanted(candidate: int, index: int) -> bool:
            """Whether the candidate trains on ``seeds[index]``: always without stopping early (every fit queued at
            once); with it, once every earlier pair has finished and a result on the seeds from there on could
            still make it count."""
            if not cfg.reevaluate_stop_early:
                return True
            if any(record(candidate, s) is None or record(None, s) is None for s in seeds[:index]):
                return False  # not settled yet: asked again when the fits in flight come back
            pair = paired_gain(candidate, rewards(candidate, index), rewards(None, index))
            return not pair.candidate_failed and beyond_accept_se(reachable_z(pair.gains, len(seeds) - index))

        submitted: set[str] = set()

        def next_requests(n: int) -> list[FitRequest]:
            batch = []
            for index, seed in enumerate(seeds):
                trained = [c for c in policies if c is not None and wanted(c, index)]
                for candidate in [None] * bool(trained) + trained:
                    request = FitRequest.reevaluate(candidate, base, seed, policies[candidate])
                    if request.key not in self.records and request.key not in submitted and len(batch) < n:
                        submitted.add(request.key)
                        batch.append(request)
            return batch

        def describe(r: TrialRecord) -> str:
            who = "base alone" if r.trial_id is None else f"trial {r.trial_id}"
            return f"reevaluate  {who}, seed {r.seed_index - cfg.noise_seeds + 1}/{cfg.reevaluate_seeds}  {_reward_text(r)}  {r.wall_seconds:.1f} s"

        self._drive(next_requests, describe)
        paired = []
        for t in top:
            ran = sum(record(t.trial_id, s) is not None for s in seeds)
            gain = paired_gain(t.trial_id, rewards(t.trial_id, len(seeds)), rewards(None, len(seeds)), stopped_early=ran < len(seeds))  # fmt: skip
            if gain.stopped_early and gain.candidate_failed:
                log.info("reevaluate  trial %d stopped after %d of %d seeds: it failed to train on %d fresh seed(s) "
                         "where the base trained, so it is never accepted", t.trial_id, ran, len(seeds), gain.candidate_failed)  # fmt: skip
            elif gain.stopped_early:
                log.info("reevaluate  trial %d stopped after %d of %d seeds (paired gain %+.4f): no result on the "
                         "seeds left could take it beyond %g SE", t.trial_id, ran, len(seeds), gain.mean, ACCEPT_SE)  # fmt: skip
            paired.append(gain)
        # Accepted first: entry 0 of top_policies.json (Policy.load's default) and the run's best_paired_gain are
        # then never a policy the verdict rejects ahead of one it accepts.
        return sorted(paired, key=lambda p: (not p.accepted, -np.nan_to_num(p.mean, nan=-np.inf), p.trial_id))

    def _check_logged_base(self) -> None:
        """Logged fits on top of another base than the one chosen now would be ranked and paired against the wrong
        base (their keys do not name it): a log whose baseline fits changed since they ran."""
        other = [r for r in self.records.values() if r.stage != "baseline" and r.base != self.floor.base]
        if other:
            raise SearchError(
                f"the trial log {self.trial_log.path} holds {len(other)} fit(s) on top of base "
                f"'{BASE_LABELS[other[0].base]}' ({other[0].key}, ...), but the base chosen now is "
                f"'{BASE_LABELS[self.floor.base]}'; their gains would be measured against the wrong base. Start afresh "
                "(search.fresh_start: true keeps this log under a new name)."
            )

    def _backfill_tracking(self) -> None:
        """Records logged by an earlier, killed run that MLflow never saw get their child runs now."""
        missing = self.tracker.untracked(list(self.records.values()))
        if missing:
            log.info("Back-filling %d MLflow child run(s) of logged fits an earlier run did not track", len(missing))
        for record in missing:
            track_trial(self.tracker, record, self.space, self.grid_images, self.cfg.track_sample_grids, self.seed,
                        backfilled=True, gain_reference=self._gain_reference(record))

    def run(self) -> SearchResult:
        try:
            self._backfill_tracking()
            choice, self.floor = self._baseline()
            self._check_logged_base()
            if self.tracker.enabled:  # the base and its seed noise, on the parent run from now on (closing values: same)
                self.tracker.submit(functools.partial(
                    self.tracker.log_parent, {"baseline_reward": self.floor.mean, "noise_floor_std": self.floor.std},
                    {"base_augmentation": choice.chosen, "base_choice": choice.describe(BASE_LABELS)}))  # fmt: skip
            if self.density:
                self._density_reference()
            screens = self._screen() if self.cfg.screen_ops else ()
            if any(o != "identity" for o in self.space.op_names):
                self._search()
            else:
                log.warning("The op screen dropped every op: no policy is left to search, and none beats the base")
            searched = any(r.stage == "search" for r in self.records.values())
            reevaluated = self._reevaluate() if self.cfg.reevaluate_top > 0 and searched else []
        finally:
            self.tracker.flush()  # every child run written before the parent run ends
        order = {key: i for i, key in enumerate(self.records)}
        records = sorted(self.records.values(), key=lambda r: order[r.key])
        return SearchResult(self.cfg.method, records, choice, self.floor, reevaluated, str(self.trial_log.path),
                            self.trial_log.fingerprint, self.cfg.reward,
                            self.tracker.target.parent_run_id if self.tracker.target else "", screens,
                            self.trial_log.created)  # fmt: skip


def _reward_text(record: TrialRecord) -> str:
    if not record.ok:
        return f"FAILED ({record.reason})"
    text = f"reward {record.reward:.4f}"
    if record.gain is not None:
        se = f", {record.gain / record.gain_se:+.1f} SE" if record.gain_se else ""
        text += f" ({record.gain:+.4f}{se})"
    return text
