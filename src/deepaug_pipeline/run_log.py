"""Append-only run log (JSON lines), the search's trial log and evaluate's run log alike: each finished record is
flushed and fsynced before the next starts.

Line 1 is a header holding the config fingerprint; a rerun with the same fingerprint resumes (logged
trials are told to the optimizer, not re-run); a different fingerprint is refused unless the caller asks
for a fresh start, and then the old log is renamed, never deleted. A line cut short by ``kill -9`` is
ignored on reading, so at most the trial in flight is lost.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepaug_pipeline.errors import UserError

log = logging.getLogger(__name__)


def _archive_name(path: Path) -> Path:
    """Where a log that a fresh start sets aside goes: its name with the time, and a counter when an earlier archive
    took that second (a fresh start of a smoke run can follow one within it; rename would replace that archive)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidates = (path.with_name(f"{path.stem}.{stamp}{'' if n == 0 else f'-{n}'}{path.suffix}") for n in itertools.count())
    return next(p for p in candidates if not p.exists() and not children_dir(p).exists())


class TrialLogMismatch(UserError, RuntimeError):
    """The log on disk was written under a different config; ``section`` is that config's key (search, evaluate)."""

    def __init__(self, message: str, section: str) -> None:
        super().__init__(message)
        self.section = section

    def __reduce__(self) -> tuple:  # pickled with its section (a Dask worker, a process pool), not re-built from args
        return type(self), (str(self), self.section)


class TrialLogBusy(UserError, RuntimeError):
    """Another process is writing this log (a second search on it); the message names the log and that process."""


class TrialLogCorrupt(UserError, RuntimeError):
    """A line of the log is not a record this project wrote (not UTF-8, not a JSON object); the message names it."""


class StaleSearchOutputs(UserError, RuntimeError):
    """Search outputs that no longer match their trial log (a later search changed it); the message names both."""


def fingerprint(config: dict[str, Any]) -> str:
    """A stable hash of everything that changes what a trial computes."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def logged_data_content(header: dict) -> str | None:
    """The hash of the data a log's records were computed on (``data_fingerprint``), from its header."""
    return ((header.get("config") or {}).get("data") or {}).get("content")


def config_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} → {b!r}")
    return out


def _mismatch(path: Path, logged: dict, config: dict, section: str) -> TrialLogMismatch:
    changes = "; ".join(config_changes(logged, config)) or "unknown differences"
    return TrialLogMismatch(
        f"the log {path} was written under a different {section} config ({changes}). No trial was run. To keep it "
        f"and start afresh, set {section}.fresh_start: true; the old log is then renamed, not deleted. Or restore the "
        "old config to resume it.",
        section,
    )


def refuse_changed_config(path: str | Path, known: dict[str, Any], section: str = "search",
                          canonical: Callable[[dict], dict] | None = None) -> None:  # fmt: skip
    """Before any work (the data is loaded later): refuse the log at ``path`` if its records were written under a
    config that differs in the keys of ``known``, the part of the config known without the data. Opening the log
    later checks the whole config as before; a log without records never blocks, as there."""
    path = Path(path)
    if not path.exists():
        return
    header, trials = read_log(path)
    logged = (canonical or (lambda c: c))(header.get("config", {}))
    logged_known = {key: logged[key] for key in known if key in logged}
    if trials and fingerprint(logged_known) != fingerprint(known):
        raise _mismatch(path, logged_known, known, section)


class TrialLog:
    """One run's durable record of finished fits: a search's trials, or an evaluation's final models."""

    def __init__(
        self,
        path: str | Path,
        config: dict[str, Any],
        fresh_start: bool = False,
        section: str = "search",
        canonical: Callable[[dict], dict] | None = None,
        reusable: Callable[[dict, dict], Callable[[dict], bool] | None] | None = None,
    ) -> None:
        """``canonical`` brings a header's config, written by this version or an older one, to the form ``config``
        is in, so a log whose config differs only in what older versions recorded still resumes.

        ``reusable(logged_config, config)`` says which records of a log written under another config still hold
        under this one (a predicate), or None when none does. Such a log is set aside as a fresh start sets it aside,
        and the records that hold are copied into the new log (``carried_from`` names the old one).

        ``fresh_start`` sets any existing log aside under a new name (config changed or not) and starts an empty one."""
        self.path = Path(path)
        self.config = config
        self._canonical = canonical or (lambda c: c)
        self._reusable = reusable
        self.carried: list[dict] = []  # records copied from the log this one replaced
        self.fingerprint = fingerprint(config)
        self.archived: Path | None = None
        self.trials: list[dict] = []
        self.created = 0.0
        self._lock = _lock(self.path, section)
        try:
            self._open(config, fresh_start, section)
        except BaseException:
            self.close()  # a refused log is not held: the corrected run in this process may open it at once
            raise

    def _open(self, config: dict[str, Any], fresh_start: bool, section: str) -> None:
        if self.path.exists():
            try:
                header, trials = read_log(self.path)
                damaged = False
            except TrialLogCorrupt:
                if not fresh_start:
                    raise
                header, trials, damaged = {}, [], True
            logged_config = self._canonical(header.get("config", {}))
            same = header.get("fingerprint") == self.fingerprint or fingerprint(logged_config) == self.fingerprint
            if not damaged and not trials and (fresh_start or not same):
                # A header and no record (a run that failed before its first fit, or a header torn by a crash):
                # nothing to keep, so it never blocks the next run.
                self.path.unlink()
                shutil.rmtree(children_dir(self.path), ignore_errors=True)
            elif damaged or not same or fresh_start:  # a fresh start sets aside a log under the same config too
                keep = None if damaged or fresh_start or self._reusable is None else self._reusable(logged_config, config)
                if not fresh_start and keep is None:
                    raise _mismatch(self.path, logged_config, config, section)
                self.archived = _archive_name(self.path)
                self.path.rename(self.archived)
                if children_dir(self.path).exists():  # the trained children belong to the archived log
                    children_dir(self.path).rename(children_dir(self.archived))
                if keep is not None:
                    self.carried = [t for t in trials if keep(t)]
                    log.info("%s was written under another %s config (%s): set aside as %s; %d of its %d records do not "
                             "depend on what changed and carry over", self.path, section,
                             "; ".join(config_changes(logged_config, config)), self.archived.name, len(self.carried), len(trials))  # fmt: skip
            else:
                _drop_partial_last_line(self.path)
                self.trials = trials
                self.created = float(header.get("created", 0.0))
                # The file keeps the fingerprint in its header (an older version's, when matched through
                # ``canonical``): outputs stamped with it still match the file they came from.
                self.fingerprint = header.get("fingerprint", self.fingerprint)
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.created = time.time()
            self._append({"type": "header", "fingerprint": self.fingerprint, "config": config, "created": self.created})
            for record in self.carried:
                self.append({**{k: v for k, v in record.items() if k != "type"}, "carried_from": self.archived.name})

    def close(self) -> None:
        """Release the log for the next run (a crash releases it too: the OS drops the lock with the process)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> TrialLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _append(self, entry: dict) -> None:
        line = json.dumps(entry, default=_json_default) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, trial: dict) -> None:
        """Write one finished record (it has a unique ``key``) durably, then remember it."""
        self._append({"type": "trial", **trial})
        self.trials.append({"type": "trial", **trial})

    @property
    def identity(self) -> str:
        """This log, as MLflow runs are tagged with it: its config and when it was started (a fresh start with the
        same config is another log)."""
        return f"{self.fingerprint}@{self.created:.6f}"

    @property
    def done_keys(self) -> set[str]:
        return {t["key"] for t in self.trials}


def _lock(path: Path, section: str):
    """An exclusive lock on ``<log>.lock`` held while the log is open: one run per log at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path.with_name(path.name + ".lock"), "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise TrialLogBusy(
            f"{path} is in use by {holder}: another {section} run is writing it. "
            "Wait for it to finish, or stop it; a stopped or crashed run releases the log at once."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
    handle.flush()
    return handle


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _whole_record(raw: bytes) -> dict | None:
    """A last line without its newline, if it is nonetheless a whole JSON object (a crash between the record and its
    newline, or a log rewritten by hand without the final one); None for a line a crash cut short."""
    try:
        entry = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return entry if isinstance(entry, dict) else None


def _drop_partial_last_line(path: Path) -> None:
    """Cut a line left unfinished by a crash, or end a whole last record with its newline, so the next append starts
    on a line of its own."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        last_start = data.rfind(b"\n") + 1
        with open(path, "r+b") as fh:
            if _whole_record(data[last_start:]) is not None:
                fh.seek(0, os.SEEK_END)
                fh.write(b"\n")
            else:
                fh.truncate(last_start)


def read_log(path: str | Path) -> tuple[dict, list[dict]]:
    """Header and records of a log; a last line cut short by a crash is skipped. Anything else that is not a JSON
    object in UTF-8 raises TrialLogCorrupt, naming the file and the line."""
    path = Path(path)
    header: dict = {}
    trials: list[dict] = []
    lines = path.read_bytes().split(b"\n")
    last = _whole_record(lines[-1]) if lines[-1].strip() else None  # b"" unless the final newline is missing
    for number, raw in enumerate(lines[:-1] + ([lines[-1]] if last is not None else []), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TrialLogCorrupt(
                f"{path}, line {number}: not a JSON record ({type(exc).__name__}: {exc}). The log was edited or damaged; "
                "restore it, or set fresh_start: true to keep it under another name and start afresh"
            ) from None
        if not isinstance(entry, dict):
            raise TrialLogCorrupt(f"{path}, line {number}: expected a JSON object, got {type(entry).__name__}")
        if entry.get("type") == "header":
            header = entry
        elif entry.get("type") == "trial":
            trials.append(entry)
    # One record per key: the first, unless it was lost by the executor and run again later.
    chosen: dict = {}
    for t in trials:
        key = t.get("key")
        if key not in chosen or chosen[key].get("lost"):
            chosen[key] = t
    return header, list(chosen.values())


def children_dir(log_path: Path) -> Path:
    """Where a log keeps the weights of the children it trained for the density reward (``bayesian.children/``)."""
    return log_path.with_suffix(".children")


class ChildWeights:
    """The trained children's weights, one ``.npz`` per record key, beside the trial log they belong to."""

    def __init__(self, trial_log: TrialLog) -> None:
        self.directory = children_dir(trial_log.path)

    def _file(self, key: str) -> Path:
        return self.directory / (key.replace("/", "-") + ".npz")

    def save(self, key: str, weights) -> None:
        """Durable before the record that needs it is logged: written whole, fsynced, then renamed into place."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self._file(key).with_suffix(".tmp.npz")
        with open(tmp, "wb") as fh:
            np.savez(fh, *weights)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._file(key))
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash of the machine
        finally:
            os.close(directory)

    def load(self, key: str) -> tuple:
        with np.load(self._file(key)) as data:
            return tuple(data[f"arr_{i}"] for i in range(len(data.files)))


class TrialLogStore:
    """A folder of run logs by name: the search's, one per method and reward (``bayesian.jsonl``,
    ``random-density.jsonl``), and evaluate's."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path_for(self, name: str) -> Path:
        return self.directory / f"{name}.jsonl"

    def open(self, name: str, config: dict[str, Any], fresh_start: bool = False, section: str = "search",
             canonical: Callable[[dict], dict] | None = None,
             reusable: Callable[[dict, dict], Callable[[dict], bool] | None] | None = None) -> TrialLog:  # fmt: skip
        return TrialLog(self.path_for(name), config, fresh_start, section, canonical, reusable)

    def comparable_runs(self, config_without_method: dict[str, Any], canonical: Callable[[dict], dict] | None = None) -> dict[str, list[dict]]:
        """Trials of every method's log written under the same config (but for the method); ``canonical`` as for
        ``TrialLog``."""
        runs = {}
        for path in sorted(self.directory.glob("*.jsonl")):
            try:
                header, trials = read_log(path)
            except TrialLogCorrupt as exc:
                log.warning("Left out of the comparison: %s", exc)
                continue
            cfg = (canonical or dict)(header.get("config", {}))
            search = dict(cfg.get("search", {}))
            method = search.pop("method", None)
            cfg["search"] = search
            if method and fingerprint(cfg) == fingerprint(config_without_method):
                runs[method] = trials
        return runs
