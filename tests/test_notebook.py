"""The tutorial notebook runs top to bottom (tiny settings), so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]


def test_tutorial_notebook_executes(tmp_path, monkeypatch):
    nb = nbformat.read(REPO / "notebooks" / "tutorial.ipynb", as_version=4)
    work = tmp_path / "notebooks"
    work.mkdir()
    (tmp_path / "data" / "01_raw").mkdir(parents=True)
    (tmp_path / "data" / "01_raw" / "fashion-mnist").symlink_to(REPO / "data" / "01_raw" / "fashion-mnist")
    monkeypatch.setenv("DEEPAUG_TUTORIAL_TINY", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    outputs = {i: c.get("outputs", []) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for outs in outputs.values() for o in outs)
    assert "base reward:" in text and "verdict: " in text
    assert "'no augmentation'" in text and "'base alone (crop + flip)'" in text and "'base + found policy'" in text
    assert (work / "tutorial_output" / "best_policy.json").is_file()
    assert not any(o.get("output_type") == "error" for outs in outputs.values() for o in outs)
    # Only the public API: a reader copies these imports.
    imports = [line for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines() if "import" in line]
    assert [line for line in imports if "deepaug_pipeline" in line] == ["from deepaug_pipeline import DeepAugment, Policy, load_dataset, sample_grid"]
