"""kedro-mlflow's hooks behind a bounded check: a tracking outage never stops or stalls a run.

kedro-mlflow contacts the tracking server in its own hooks (it sets up the experiment as soon as the context
exists), outside any try/except of ours, and MLflow retries a refused connection for minutes. So the project turns
kedro-mlflow's own hook registration off (``DISABLE_HOOKS_FOR_PLUGINS`` in settings.py) and registers it through
``GuardedMlflowHook``, which gives kedro-mlflow's set-up (its first contact with the server) a bounded time, unless
the user already has a run open (then it runs in the caller's thread, where MLflow lists that run, against the server
the user already uses), and asks the server again before each MLflow dataset saves. If tracking is unusable, at start-up or later, it warns once, naming the URI and the reason, and the run goes on with tracking off: the MLflow datasets in
the catalog still save their files locally, and every output is written.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset
from kedro_mlflow.io.catalog.switch_catalog_logging import switch_catalog_logging
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset

log = logging.getLogger(__name__)

# MLflow's HTTP client retries 7 times with exponential back-off and waits 120 s per request by default: minutes for
# a server that is down. These bound one call to about half a minute; a value the user set is kept.
BOUNDED_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
PROBE_SECONDS = 20.0


def tracking_uri(mlflow_conf: dict, project_path: Path) -> str:
    """The URI kedro-mlflow will use: mlflow.yml's, else MLFLOW_TRACKING_URI, else ``mlruns``; a relative local path
    is taken from the project root (``anchored_to_project`` hands kedro-mlflow that form)."""
    uri = given_uri(mlflow_conf)
    if relative_sqlite(uri):
        uri = f"sqlite:///{(project_path / uri[len('sqlite:///'):]).resolve()}"
    elif "://" not in uri and uri != "databricks":
        uri = (project_path / uri).resolve().as_uri()
    return uri


def given_uri(mlflow_conf: dict) -> str:
    return str(((mlflow_conf or {}).get("server") or {}).get("mlflow_tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or "mlruns")


def relative_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:///") and not uri.startswith("sqlite:////") and uri != "sqlite:///:memory:"


def anchored_to_project(mlflow_conf: dict, project_path: Path) -> dict:
    """mlflow.yml with a relative sqlite store pinned to the project: kedro-mlflow makes only scheme-less paths
    absolute, so ``sqlite:///mlflow.db`` (and MLflow's default artifact root, ``./mlruns``) would follow the directory
    ``kedro run`` was started from, and the review UI, started in the project, would miss those runs."""
    conf = copy.deepcopy(mlflow_conf)
    if not relative_sqlite(given_uri(conf)):
        return conf
    conf["server"] = {**(conf.get("server") or {}), "mlflow_tracking_uri": tracking_uri(conf, project_path)}
    experiment = (conf.get("tracking") or {}).get("experiment")
    if isinstance(experiment, dict):  # else kedro-mlflow's own validation refuses the file (and tracking goes off)
        create_kwargs = experiment.get("create_experiment_kwargs") or {}
        if not create_kwargs.get("artifact_location"):
            # MLflow's default is ./mlruns/<experiment id>; the id does not exist before the experiment, the name does
            location = project_path / "mlruns" / str(experiment.get("name") or "Default")
            experiment["create_experiment_kwargs"] = {**create_kwargs, "artifact_location": location.resolve().as_uri()}
    return conf


def bounded(call, timeout: float) -> str | None:
    """Run ``call()`` for at most ``timeout`` seconds: None if it returned, else why not (its error, or no answer).
    A call still waiting is left to finish in the background; nothing waits for it."""
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - any failure means "unusable"; the reason is reported
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name="mlflow-probe")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return f"no answer within {timeout:.0f} s"
    return describe(outcome["error"]) if "error" in outcome else None


def describe(exc: BaseException) -> str:
    """An error in one line: its type and the first line of its message (MLflow's run to dozens of lines), a long
    one shortened in the middle, since urllib3 ends its line with the cause (a refused connection, an unknown host)."""
    text = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
    return text if len(text) <= 300 else f"{text[:140]} … {text[-160:]}"


def tracking_problem(uri: str, timeout: float = PROBE_SECONDS) -> str | None:
    """Why ``uri`` cannot be used for tracking (None if it can): one real MLflow request, given ``timeout`` seconds."""
    from mlflow.tracking import MlflowClient

    return bounded(lambda: MlflowClient(tracking_uri=uri).search_experiments(max_results=1), timeout)


def tracking_off(catalog) -> None:
    """MLflow datasets stop logging: artifact datasets still write their local files; metric datasets, which exist
    only in MLflow and reach the tracking store even with logging off, become in-memory."""
    switch_catalog_logging(catalog, False)
    for name, dataset in list(catalog.items()):
        if isinstance(dataset, MlflowMetricsHistoryDataset):
            catalog[name] = MemoryDataset()


class GuardedMlflowHook:
    """kedro-mlflow's ``MlflowHook``, called only while tracking works; any failure of it turns tracking off."""

    def __init__(self) -> None:
        from kedro_mlflow.framework.hooks import MlflowHook

        self._inner = MlflowHook()
        self.enabled = True
        self.uri = ""
        self._catalog = None
        self._users_run: str | None = None  # a run the user had open at set-up: kedro-mlflow logs into it, never ends it
        self._node_lock = threading.Lock()  # before_node_run hides the run id from kedro-mlflow, which threads share

    def _disable(self, reason: str) -> None:
        if not self.enabled:
            return
        self.enabled = False
        log.warning(  # a log record, not a Python warning: PYTHONWARNINGS=ignore must not hide it
            "MLflow tracking at %s is unusable (%s); the run goes on with tracking off and writes every output "
            "locally. Check the server, or mlflow.yml's server.mlflow_tracking_uri.", self.uri, reason,
        )  # fmt: skip
        if self._catalog is not None:
            tracking_off(self._catalog)
        import mlflow

        # Leave no run of ours half-open in this process; a run the user opened before the session stays theirs.
        while (active := mlflow.active_run()) is not None and active.info.run_id != self._users_run:
            try:
                mlflow.end_run("FAILED")
            except Exception:  # noqa: BLE001 - end_run takes the run off the list before it tells the (gone) server
                pass

    def _call(self, name: str, **kwargs: Any) -> None:
        if not self.enabled:
            return
        try:
            getattr(self._inner, name)(**kwargs)
        except Exception as exc:  # noqa: BLE001 - kedro-mlflow's call failed: tracking off, the run goes on
            self._disable(f"kedro-mlflow's {name} failed: {describe(exc)}")

    def _probe(self) -> None:
        import mlflow

        problem = tracking_problem(mlflow.get_tracking_uri())  # the URI kedro-mlflow set up, exactly
        if problem:
            self._disable(problem)

    @hook_impl
    def after_context_created(self, context) -> None:
        # A new session (a notebook makes several) tries tracking again.
        self.enabled, self._catalog, self._users_run = True, None, None
        for key, value in BOUNDED_HTTP.items():
            os.environ.setdefault(key, value)
        loader = context.config_loader
        loader.config_patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])  # as kedro-mlflow reads it
        try:
            conf = loader["mlflow"]
        except Exception:  # noqa: BLE001 - no mlflow.yml: kedro-mlflow's defaults
            conf = {}
        self.uri = tracking_uri(conf, Path(context.project_path))
        if conf:
            loader["mlflow"] = anchored_to_project(conf, Path(context.project_path))  # what kedro-mlflow reads next
        import mlflow

        if (users := mlflow.active_run()) is not None:
            # A run the user opened (a notebook): kedro-mlflow takes its store and logs into it, but only if it sees
            # it, and MLflow lists active runs per thread, so its set-up runs here; it reads the run, contacting no
            # server the user is not already using. Known now, so a failing set-up never ends it.
            self._users_run = users.info.run_id
            self._call("after_context_created", context=context)
            return
        # kedro-mlflow's own set-up is the first contact with the server (it finds or creates the experiment, with
        # its credentials and headers): run it, but give it PROBE_SECONDS at most.
        problem = bounded(lambda: self._inner.after_context_created(context=context), PROBE_SECONDS)
        if problem:
            self._disable(f"kedro-mlflow's set-up failed: {problem}")

    @hook_impl
    def after_catalog_created(self, catalog, conf_catalog, conf_creds, parameters, save_version, load_versions) -> None:
        self._catalog = catalog
        # Only renames metric datasets (no server call): done either way, so the catalog looks the same.
        self._inner.after_catalog_created(catalog=catalog, conf_catalog=conf_catalog, conf_creds=conf_creds,
                                          parameters=parameters, save_version=save_version, load_versions=load_versions)  # fmt: skip

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        self._catalog = catalog
        if not self.enabled:
            tracking_off(catalog)
            return
        self._call("before_pipeline_run", run_params=run_params, pipeline=pipeline, catalog=catalog)

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async) -> None:
        import mlflow

        with self._node_lock:  # a threaded runner's other threads must never read the hidden run id
            run_id = getattr(self._inner, "run_id", None)
            active = mlflow.active_run() if self.enabled and run_id is not None else None
            if active is None or active.info.run_id != run_id:  # a thread without the run: kedro-mlflow re-opens it
                self._call("before_node_run", node=node, catalog=catalog, inputs=inputs, is_async=is_async)
                return
            # kedro-mlflow re-opens its run before every node, for threaded runners; in the thread that already holds
            # it each re-opening lists the run once more on MLflow's per-thread list, which outlives the session (a
            # user's own run then needed one end_run per node). Here it only logs the node's parameters.
            self._inner.run_id = None
            try:
                self._call("before_node_run", node=node, catalog=catalog, inputs=inputs, is_async=is_async)
            finally:
                self._inner.run_id = run_id

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        # A server that died during a long node would make the MLflow dataset's upload fail the node: ask first
        # (one small request; a run saves about ten such datasets).
        if not self.enabled or self._catalog is None:
            return
        try:
            dataset = self._catalog.get(dataset_name)
        except Exception:  # noqa: BLE001
            return
        if type(dataset).__name__.startswith("Mlflow"):
            self._probe()

    @hook_impl
    def after_pipeline_run(self, run_params, pipeline, catalog) -> None:
        self._call("after_pipeline_run", run_params=run_params, pipeline=pipeline, catalog=catalog)

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        self._call("on_pipeline_error", error=error, run_params=run_params, pipeline=pipeline, catalog=catalog)
