"""The example notebook runs top to bottom (on digits, two epochs a model)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # trains, kills, builds or starts a browser

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_workshop_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_EXAMPLE_DATA", "digits")
    monkeypatch.setenv("AELAB_EXAMPLE_EPOCHS", "2")
    nb = nbformat.read(EXAMPLES / "workshop.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 10  # every figure cell drew
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "held-out MSE" in text and "PCA(20)" in text
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widgets  # aelab.explore(...) displayed its sliders
    pages = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    pages = ["".join(p) if isinstance(p, list) else p for p in pages]
    assert any("<b>aelab run</b> shallow" in p for p in pages)  # a Run displays itself
    assert any("<b>aelab workshop</b>" in p and "deep" in p for p in pages)
