"""``aelab evaluate``: every model of a run against PCA on images it never saw.

For a run directory (``aelab train``) or a workshop (``aelab run``), each model's held-out
reconstruction error is set beside PCA's with as many components as the model has code units,
PCA fitted on the same training images (validation people included: they are training people),
and the 1-nearest-neighbour identity accuracy of both codes. ``sizes`` adds PCA's own curve
(its held-out error at other code sizes), against which models of those sizes can be read.
Nothing here trains or writes into the run: the caller chooses where the JSON goes.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from aelab.analysis import metrics
from aelab.analysis.measure import measure
from aelab.runs.open import open_runs

CURVE_SIZES = (10, 20, 30, 50, 100)
RENAMED = {"mse": "heldout.mse", "ratio": "pca_ratio", "knn_accuracy": "heldout.knn_accuracy"}


def evaluate(
    path: str | os.PathLike,
    *,
    data_home: str | os.PathLike | None = None,
    sizes: tuple[int, ...] = (),
    legacy: bool = False,
) -> dict[str, Any]:
    """The model/PCA comparison of the run in ``path`` (see the module's docstring).

    Returns
    -------
    dict
        ``{"data": ..., "models": {name: {"code_size", "mse", "pca_mse", "ratio",
        "knn_accuracy", "pca_knn_accuracy", "seeds", "spread"[, "anomaly"]}}, "pca_curve":
        [{"n_components", "mse"}], "robustness": ...}``; ``ratio`` is None where PCA is exact (as
        many components as pixels); with several seeds a model's numbers are their means and
        ``spread`` their summaries (:func:`aelab.analysis.spread.summary`; ``"mse"``,
        ``"ratio"``, ``"knn_accuracy"``); ``anomaly`` where the split kept unseen images of its
        training people
        (``DataSpec.normals``); ``robustness`` is
        :func:`aelab.analysis.robustness.corruption_curve`'s.
    """
    opened = open_runs(path, data=True, data_home=data_home, legacy=legacy)
    split = opened.in_memory("evaluate")
    result, _ = measure(opened.groups, split)
    table = {}
    for name, m in result["models"].items():
        spread = m["spread"]
        table[name] = {
            "code_size": m["code_size"],
            "mse": m["heldout"]["mse"],
            "pca_mse": m["pca"]["mse"],
            "ratio": m["pca_ratio"],
            "knn_accuracy": m["heldout"]["knn_accuracy"],
            "pca_knn_accuracy": m["pca"]["knn_accuracy"],
            "seeds": m["seeds"],
            "spread": {key: spread[path] for key, path in RENAMED.items() if path in spread},
        }
        if "anomaly" in m:  # the split kept unseen images of its training people
            table[name]["anomaly"] = m["anomaly"]
    curve = pca_curve(split.train.images, split.heldout.images, sizes) if sizes else []
    return {
        "data": result["data"],
        "models": table,
        "pca_curve": curve,
        "robustness": result["robustness"],
    }


def pca_curve(x_train: np.ndarray, x_test: np.ndarray, sizes: tuple[int, ...]) -> list[dict]:
    """PCA's held-out MSE at each code size in ``sizes`` (capped by the training set)."""
    limit = min(len(x_train), int(np.prod(x_train.shape[1:])))
    out = []
    for k in sorted({min(int(s), limit) for s in sizes}):
        fit = metrics.pca_baseline(x_train, x_test, n_components=k)
        out.append({"n_components": k, "mse": metrics.mse(x_test, fit.x_test_hat)})
    return out


def _beats(m: dict[str, Any]) -> bool:
    """Below PCA's error: the ratio's 95% interval wholly below 1 (several seeds), or the ratio
    itself (one seed)."""
    ci = (m.get("spread", {}).get("ratio") or {}).get("ci95")
    return m["ratio"] is not None and (ci[1] < 1 if ci else m["ratio"] < 1)


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a plain-text table, one model a row, the verdict at the end."""

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    def sd(m: dict[str, Any], key: str, fmt: str) -> str:
        s = m.get("spread", {}).get(key)
        return "" if s is None or s["std"] is None else f" ± {format(s['std'], fmt)}"

    many = any(len(m.get("seeds", ())) > 1 for m in result["models"].values())
    w = 19 if many else 9
    lines = [
        f"{'model':<10} {'code':>5} {'seeds':>5} {'MSE':>{w}} {'PCA MSE':>9} {'ratio':>{w - 2}} "
        f"{'1-NN':>6} {'PCA 1-NN':>8}"
    ]
    for name, m in result["models"].items():
        ratio = "exact" if m["ratio"] is None else f"{m['ratio']:.3f}"  # PCA has every pixel
        ratio += "" if m["ratio"] is None else sd(m, "ratio", ".3f")
        mse = f"{m['mse']:.5f}{sd(m, 'mse', '.5f')}"
        lines.append(
            f"{name:<10} {m['code_size']:>5} {len(m.get('seeds', [0])):>5} {mse:>{w}} "
            f"{m['pca_mse']:>9.5f} {ratio:>{w - 2}} {pct(m['knn_accuracy']):>6} "
            f"{pct(m['pca_knn_accuracy']):>8}"
        )
    if result["pca_curve"]:
        lines.append("PCA held-out MSE by code size: " + ", ".join(
            f"{p['n_components']}: {p['mse']:.5f}" for p in result["pca_curve"]
        ))  # fmt: skip
    beat = [n for n, m in result["models"].items() if _beats(m)]
    lines.append(f"beats PCA at its code size: {', '.join(beat)}" if beat else "no model beats PCA")
    if many:
        lines.append("mean ± std over seeds; beats PCA: the 95% interval of the ratio below 1")
    return "\n".join(lines)


__all__ = ["CURVE_SIZES", "evaluate", "format_table", "pca_curve"]
