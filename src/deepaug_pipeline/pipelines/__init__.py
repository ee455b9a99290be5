"""The Kedro pipelines: ingest, search, evaluate.

Their nodes import the library inside the node functions, after ``TensorFlowHook`` has configured TensorFlow for
the nodes tagged ``tensorflow`` (the library builds tensors as it loads): Kedro imports the nodes of every pipeline a
command names (all of them for ``kedro run`` and ``kedro registry list``), and TensorFlow alone took seconds of that
(tests/test_console.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure
else:
    Figure = object  # Kedro resolves the nodes' type hints when a run starts; the real class would load Matplotlib

TENSORFLOW_TAG = "tensorflow"  # the nodes that run TensorFlow (search, evaluate; not ingest): see TensorFlowHook

__all__ = ["TENSORFLOW_TAG", "Figure"]
