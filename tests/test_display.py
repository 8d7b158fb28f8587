"""Runs and workshops display themselves in Jupyter (``_repr_html_``)."""

from __future__ import annotations

import json
import shutil

import pytest

import aelab
from aelab.apps.workshop import WORKSHOP_MODELS


def test_a_workshop_shows_its_table_and_curves(workshop):
    w = aelab.open_workshop(workshop)
    assert list(w.runs) == list(WORKSHOP_MODELS) and w["deep"].name == "deep"
    page = w._repr_html_()
    metrics = json.loads((workshop / "metrics.json").read_text())["models"]
    for name, m in metrics.items():
        assert f"<td>{name}</td>" in page
        assert f"<td>{m['heldout']['mse']:.5f}</td>" in page and f"{m['pca']['mse']:.5f}" in page
    assert page.count('src="data:image/png;base64,') == 1  # the learning curves, inline
    assert "http" not in page  # nothing to fetch


def test_a_run_shows_itself_and_names_are_escaped(workshop, tmp_path):
    folder = tmp_path / "<b>x</b>"
    shutil.copytree(workshop, folder)
    run = aelab.open_workshop(folder)["vae"]
    page = run._repr_html_()
    assert "<b>aelab run</b> vae" in page and "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert f"<td>{run.model.num_parameters():,}</td>" in page


def test_a_folder_that_is_no_workshop_is_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"holds no workshop.json") as e:
        aelab.open_workshop(tmp_path)
    assert "\n" not in str(e.value)
