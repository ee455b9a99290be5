"""The project's runner: Kedro's SequentialRunner, but a run that would ingest the same source with the same
settings again reuses the splits on disk instead (loading an image folder can take minutes, and the splits of the
embedded data are 100 MB rewritten)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

log = logging.getLogger(__name__)

RAW_SOURCE = "raw_images"
SPLITS_SUMMARY = "dataset_summary"


class SplitsReusingRunner(SequentialRunner):
    """``kedro run``'s default runner in this project (cli.py). ``--runner=SequentialRunner`` ingests regardless."""

    def run(self, pipeline: Pipeline, catalog, hook_manager=None, run_id: str | None = None,
            only_missing_outputs: bool = False) -> dict[str, Any]:  # fmt: skip
        return super().run(without_current_ingest(pipeline, catalog), catalog, hook_manager=hook_manager,
                           run_id=run_id, only_missing_outputs=only_missing_outputs)  # fmt: skip


def without_current_ingest(pipeline: Pipeline, catalog) -> Pipeline:
    """``pipeline`` without its ingest nodes when all of ingest's outputs are on disk, made from the source as its
    files are now, with the current ingest settings and seed (``dataset_summary`` records both), and none written
    after the summary (ingest writes it last: a newer split is from a run that stopped halfway); else as it is.
    A pipeline holding part of ingest only (``--nodes=validate_images``) runs as asked."""
    from deepaug_pipeline.config import validate_params
    from deepaug_pipeline.hooks import catalog_filepath
    from deepaug_pipeline.ingest.split import splits_are_current
    from deepaug_pipeline.pipelines.ingest import create_pipeline as ingest_pipeline

    ingest = ingest_pipeline()
    if not {n.name for n in ingest.nodes} <= {n.name for n in pipeline.nodes}:
        return pipeline
    fingerprint = getattr(catalog.get(RAW_SOURCE), "fingerprint", None)  # a source type of the user's own: not known
    if fingerprint is None or not all(catalog.exists(name) for name in ingest.outputs()):
        return pipeline
    try:
        summary = catalog.load(SPLITS_SUMMARY)
        current = fingerprint()
        written = {name: Path(catalog_filepath(catalog, name)).stat().st_mtime_ns for name in ingest.outputs()}
    except Exception:  # noqa: BLE001 - unreadable summary or source, a split stored elsewhere: ingest runs
        log.debug("the splits on disk could not be checked; ingest runs", exc_info=True)
        return pipeline
    if max(written.values()) > written[SPLITS_SUMMARY]:
        return pipeline
    params = validate_params(catalog.load("parameters"))
    if not splits_are_current(summary, params.ingest, params.seed, current):
        return pipeline
    log.info("Ingest left out: the splits on disk were made from the same source files with the same ingest settings "
             "and seed (%s). To ingest again anyway: kedro run --runner=SequentialRunner ...",
             catalog_filepath(catalog, SPLITS_SUMMARY))  # fmt: skip
    return pipeline - ingest
