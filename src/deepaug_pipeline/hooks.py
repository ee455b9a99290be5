"""Project hooks: refuse bad parameters, missing inputs and a trial log of another search config before any node
runs; end every run with a summary."""

from __future__ import annotations

import logging

from kedro.framework.hooks import hook_impl

from deepaug_pipeline.config import ConfigError, SearchConfig, canonical_search_config, parse_config, validate_params
from deepaug_pipeline.run_log import TrialLogMismatch, config_changes, logged_data_content, read_log, refuse_changed_config
from deepaug_pipeline.pipelines import TENSORFLOW_TAG

# Where the summary points a reader: the outputs they open first.
SEARCH_FILES = ("best_policy", "top_policies_table", "trials_table", "convergence_plot")
EVALUATE_FILES = ("report_html", "report_md")
SEARCH_NODE = "search_policies"  # the node that opens the trial log
SPLIT_NODE = "split_images"  # the node that writes the splits the search runs on
MLFLOW_UI = "http://127.0.0.1:5000"  # `kedro mlflow ui`'s default address (conf/base/mlflow.yml, ui:)

log = logging.getLogger(__name__)


def catalog_filepath(catalog, name: str) -> str:
    """Where a catalog entry is stored, for messages."""
    return catalog.get(name)._describe().get("filepath", "") or "see catalog"


class ConfigValidationHook:
    """Reject bad parameters, missing pipeline inputs and a trial log written under another search config before any
    work starts (ingest included: on a user's image folder it may take minutes)."""

    @hook_impl
    def after_context_created(self, context) -> None:
        validate_params(context.params)

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        self._refuse_missing_inputs(pipeline.inputs(), catalog)
        nodes = {node.name for node in pipeline.nodes}
        if SEARCH_NODE in nodes:
            params = validate_params(catalog.load("parameters"))
            self._refuse_changed_search(params, catalog)
            if SPLIT_NODE in nodes:
                self._refuse_replacing_the_searchs_data(params, catalog)

    @staticmethod
    def _refuse_changed_search(params, catalog) -> None:
        """The seed and the search keys are known before ingest; the data's part of the trial log's config is
        checked once the data is loaded, when the search opens its log."""
        if params.search.fresh_start:
            return
        known = canonical_search_config({"seed": params.seed, "search": params.search.model_dump()})
        path = catalog.load("trial_logs").path_for(params.search.trial_log_name)
        refuse_changed_config(path, known, "search", canonical_search_config)

    @staticmethod
    def _refuse_replacing_the_searchs_data(params, catalog) -> None:
        """Ingest would rewrite the splits a trial log with records was made on (their settings changed since), and
        the search would then refuse the log: refused first, before the splits on disk are replaced."""
        from deepaug_pipeline.ingest.split import made_from_now

        path = catalog.load("trial_logs").path_for(params.search.trial_log_name)
        if params.search.fresh_start or not path.exists() or not catalog.exists("dataset_summary"):
            return
        try:
            splits = catalog.load("dataset_summary")
        except Exception:  # noqa: BLE001 - unreadable: ingest rewrites it, and the search checks the data it makes
            return
        before = splits.get("made_from") if isinstance(splits, dict) else None
        if not isinstance(before, dict):  # written before the splits recorded their settings
            return
        now = made_from_now(before, params.ingest, params.seed)
        if before == now:  # ingest makes the same splits again: the log need not be read
            return
        header, records = read_log(path)
        if records and logged_data_content(header) == splits.get("content"):
            raise TrialLogMismatch(
                f"ingest would replace the splits the log {path} was made on: their settings changed since "
                f"({'; '.join(config_changes(before, now))}). No step was run. To keep the log and search the new "
                "splits, set search.fresh_start: true; the old log is then renamed, not deleted. Or restore the old "
                "settings to resume it.",
                "search",
            )

    @staticmethod
    def _refuse_missing_inputs(inputs: set[str], catalog) -> None:
        missing = sorted(name for name in inputs if not name.startswith("params:") and name != "parameters" and not catalog.exists(name))
        if not missing:
            return
        where = [f"{name} ({catalog_filepath(catalog, name)})" for name in missing]
        from deepaug_pipeline.pipeline_registry import search_with_ingest

        if set(missing) & search_with_ingest().all_outputs():  # written by the search: "run the search first"
            raise ConfigError(
                f"missing search outputs: {', '.join(where)}. Run the search first: `kedro run --pipelines=search` "
                "(with the same --env)."
            )
        raise ConfigError(f"missing pipeline inputs: {', '.join(where)}")


class TensorFlowHook:
    """TensorFlow is configured (GPU memory growth, so trial processes can share a GPU) before a node that uses it
    builds its first tensor, after which the setting cannot change. The nodes carry the tag."""

    @hook_impl
    def before_node_run(self, node) -> None:
        if TENSORFLOW_TAG in node.tags:
            from deepaug_pipeline.devices import configure_tensorflow

            configure_tensorflow()


class RunSummaryHook:
    """Every search and evaluate ends with what it found, where the files are and what to run next."""

    def __init__(self) -> None:
        self._search = None
        self._combine_top = 0
        self._child_trains_as_final = True
        self._evaluation = None
        self._experiment: str | None = None

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        self._search, self._evaluation, self._experiment = None, None, None

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async) -> None:
        if node.name == SEARCH_NODE:
            from deepaug_pipeline.search.tracking import TrackingTarget

            self._search = outputs["trials"]
            self._combine_top = parse_config(SearchConfig, inputs["params:search"], "search").combine_top
            try:  # validated before the run started; the summary must never fail a finished search
                self._child_trains_as_final = validate_params(catalog.load("parameters")).child_trains_as_final()
            except Exception:  # noqa: BLE001
                log.debug("the closing summary could not compare the child with the final model", exc_info=True)
                self._child_trains_as_final = True  # no hint rather than a wrong one
            target = TrackingTarget.from_active_run()
            self._experiment = target.experiment_id if target is not None else None
        elif node.name == "summarise_evaluation":
            self._evaluation = (outputs["evaluation_table"], inputs["evaluation_runs"])

    @hook_impl
    def after_pipeline_run(self, run_params, pipeline, catalog) -> None:
        outputs = pipeline.all_outputs()
        lines = []
        if self._search is not None:
            from deepaug_pipeline.search.results import summary_lines

            lines += ["Search finished.", *summary_lines(self._search, self._combine_top, self._child_trains_as_final)]
            lines += [f"  {name}: {catalog_filepath(catalog, name)}" for name in SEARCH_FILES if name in outputs]
            lines.append("Next: `kedro run --pipelines=evaluate` trains the final models with and without it.")
            if self._experiment is not None:
                lines.append(f"Review every trial: `kedro mlflow ui`, then {MLFLOW_UI}/#/experiments/{self._experiment}"
                             "?workflowType=machine_learning")  # fmt: skip
        if self._evaluation is not None:
            from deepaug_pipeline.evaluate.report import verdict

            lines += ["Evaluation finished.", *verdict(*self._evaluation)]
            lines += [f"  report: {catalog_filepath(catalog, name)}" for name in EVALUATE_FILES if name in outputs]
        if lines:
            log.info("\n".join(lines))
