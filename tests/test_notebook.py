"""The tutorial notebook runs top to bottom (tiny settings), so it cannot rot."""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tutorial_notebook_executes(tmp_path, monkeypatch):
    nb = nbformat.read(REPO / "notebooks" / "tutorial.ipynb", as_version=4)
    work = tmp_path / "notebooks"
    work.mkdir()
    (tmp_path / "data" / "01_raw").mkdir(parents=True)
    (tmp_path / "data" / "01_raw" / "fashion-mnist").symlink_to(REPO / "data" / "01_raw" / "fashion-mnist")
    monkeypatch.setenv("DEEPAUG_TUTORIAL_TINY", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)

    def shown(snippet: str) -> str:
        """What the code cell whose source holds ``snippet`` printed and displayed."""
        cell = next(c for c in code if snippet in c.source)
        return "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)

    if not os.path.exists("/proc/driver/nvidia/version"):  # with a driver, CUDA's start-up lines are kept on purpose
        assert shown("%matplotlib inline") == ""  # the imports print nothing, TensorFlow's native notices included
    assert "(60000, 28, 28, 1) uint8" in shown("load_dataset(")  # the whole embedded training split
    # The search's numbers are accuracies, and what it says is what it saved.
    said = shown('print("base reward:"')
    base, spread, best = map(float, re.search(r"base reward: ([\d.]+) ± ([\d.]+)\s+best policy reward: ([\d.]+)", said).groups())
    assert 0 < base <= 1 and 0 <= spread < 1 and 0 < best <= 1
    saved = json.loads((work / "tutorial_output" / "best_policy.json").read_text())
    assert f"verdict: {saved['metadata']['verdict']}\n" in said
    assert f"+ {len(saved['sub_policies'])} sub-policies" in shown("deepaug.best_policy()")
    # The comparison trained three models that learned: test accuracy well above 10-class chance.
    accuracies = ast.literal_eval(shown("results = {}"))
    assert list(accuracies) == ["no augmentation", "base alone (crop + flip)", "base + found policy"]
    assert all(0.2 < a <= 1 for a in accuracies.values()), accuracies
    grid = next(c for c in code if "sample_grid(shown" in c.source)
    assert any("image/png" in o.get("data", {}) for o in grid.outputs)  # the reader sees the policy on real images
    assert "[16, 28, 28, 1]" in shown("augmented = ")  # the saved policy reloads and augments
    # Only the public API: a reader copies these imports.
    imports = [line for c in code for line in c.source.splitlines() if "import" in line]
    assert [line for line in imports if "deepaug_pipeline" in line] == ["from deepaug_pipeline import DeepAugment, Policy, load_dataset, sample_grid"]
