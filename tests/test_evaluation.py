"""``aelab evaluate``: each model of a run or a workshop against PCA at its code size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aelab.analysis.metrics import mse, pca_baseline
from aelab.apps.evaluation import evaluate, format_table, pca_curve
from aelab.cli import main


@pytest.mark.slow
def test_a_workshop_gives_one_row_per_model_matching_its_metrics(workshop, capsys):
    result = evaluate(workshop, sizes=(2, 4))
    metrics = json.loads((workshop / "metrics.json").read_text())["models"]
    assert list(result["models"]) == list(metrics)
    for name, row in result["models"].items():
        assert row["code_size"] == metrics[name]["code_size"]
        assert row["pca_mse"] == pytest.approx(metrics[name]["pca"]["mse"])
        assert row["mse"] == pytest.approx(metrics[name]["heldout"]["mse"], rel=1e-5)
        if row["code_size"] >= 64:  # every pixel of 8x8 digits: PCA is exact, no ratio
            assert row["ratio"] is None and metrics[name]["pca_ratio"] is None
            continue
        assert row["ratio"] == pytest.approx(row["mse"] / row["pca_mse"])
        assert metrics[name]["pca_ratio"] == pytest.approx(row["ratio"], rel=1e-5)
    assert [p["n_components"] for p in result["pca_curve"]] == [2, 4]
    # the corruption curve and the anomaly rows: the report's, measured again
    saved = json.loads((workshop / "metrics.json").read_text())["robustness"]
    assert result["robustness"]["levels"] == saved["levels"]
    for name, per_kind in saved["methods"].items():
        for kind, values in per_kind.items():
            assert result["robustness"]["methods"][name][kind] == pytest.approx(values, rel=1e-4)
    for name, row in result["models"].items():
        assert row["anomaly"]["auc"] == pytest.approx(metrics[name]["anomaly"]["auc"])
    table = format_table(result)
    assert len(table.splitlines()) == 1 + len(metrics) + 2
    assert main(["evaluate", str(workshop)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed[1:-1]] == list(metrics)


def test_pca_curve_is_pca_at_each_size_capped_by_the_training_set():
    rng = np.random.default_rng(0)
    x_train, x_test = rng.random((12, 1, 4, 4)), rng.random((5, 1, 4, 4))
    curve = pca_curve(x_train, x_test, (3, 50))
    assert [p["n_components"] for p in curve] == [3, 12]
    fit = pca_baseline(x_train, x_test, n_components=3)
    assert curve[0]["mse"] == pytest.approx(mse(x_test, fit.x_test_hat))


def test_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
