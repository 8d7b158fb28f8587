"""A workshop run directory -> ``metrics.json``, ``figures/*.png`` and a self-contained
``report.html``.

Every number is measured on the held-out images (people or samples the models never saw) and set
beside PCA fitted on the training images with as many components as the model's code has: PCA is
the optimal linear code, so an autoencoder earns its keep only by beating it. Figures follow the
workshop notebook's order; plots receive arrays, never models.
"""

from __future__ import annotations

import base64
import os
import shlex
from collections.abc import Callable
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from aelab import plots
from aelab.analysis.measure import measure
from aelab.apps.report_figures import report_figures
from aelab.data.prepare import Split
from aelab.runs.open import open_runs
from aelab.runs.rundir import RunDir


def verdict(name: str, m: dict[str, Any]) -> str:
    """One sentence: did the model beat PCA with the same code size on held-out data?"""
    ae, pca = m["heldout"]["mse"], m["pca"]["mse"]
    k = m["pca"]["n_components"]
    if ae < pca:
        return (
            f"{name} beats PCA with {k} components on held-out images: MSE {ae:.5f} vs "
            f"{pca:.5f} ({(pca - ae) / pca:.0%} lower)."
        )
    return (
        f"{name} does not beat PCA with {k} components on held-out images: MSE {ae:.5f} vs "
        f"{pca:.5f} ({(ae - pca) / pca:.0%} higher)."
    )


def missing_note(missing: list[str], folder: str | os.PathLike) -> str | None:
    """One sentence naming a workshop's models not trained yet, and the command that trains them
    (None when every model is trained)."""
    if not missing:
        return None
    return (
        f"{', '.join(missing)}: not trained yet, left out of the report; finish "
        f"{'it' if len(missing) == 1 else 'them'} with: aelab run --out "
        f"{shlex.quote(os.fspath(folder))} --resume"
    )


def build_report(
    out: str | os.PathLike,
    *,
    split: Split | None = None,
    seed: int = 0,
    data_home: str | None = None,
    log: Callable[[str], None] | None = None,
    rundir: RunDir | None = None,
    legacy: bool = False,
) -> dict[str, Any]:
    """Rebuild ``metrics.json``, ``figures/`` and ``report.html`` of a workshop run directory.

    Loads the saved models (no training), every file checked against the folder's manifest, and
    the data from ``data_home`` (never from a folder the run's files name), checked against each
    model's record of its split; ``split`` skips reloading the data. Writes only regular files
    inside ``out``, holding its lock (``rundir``: the caller's, when it holds one). The models of
    an interrupted workshop not trained yet are left out, and named (``"missing"``; on the page,
    with the command that trains them: :func:`missing_note`). ``legacy=True`` reads a run of
    aelab 0.1, which has no manifest, unchecked (see :func:`aelab.runs.open.open_runs`).
    """
    if rundir is None:
        with RunDir.resume(out, kind="workshop", legacy=legacy) as own:
            return build_report(own.path, split=split, seed=seed, data_home=data_home, log=log,
                                rundir=own, legacy=legacy)  # fmt: skip
    folder = rundir.path
    opened = open_runs(folder, data=True, data_home=data_home, split=split, legacy=legacy)
    runs, split = opened.runs, opened.split
    result, arrays = measure(runs, split, seed=seed)
    result["schedule"] = opened.workshop.label
    result["missing"] = opened.missing
    figures = report_figures(runs, split, result["models"], arrays, seed)
    for f in figures:
        png = plots.png_bytes(f.pop("figure"))
        rundir.write(f"figures/{f['file']}", png, commit=False)
        f["data"] = base64.b64encode(png).decode("ascii")
    rundir.write_json("metrics.json", result, commit=False)
    page = render_html(result, figures, missing_note(opened.missing, rundir.target))
    rundir.write("report.html", page.encode("utf-8"), commit=False)
    rundir.manifest.write(folder)
    if log:
        log(f"wrote {rundir.target / 'report.html'}")
    return result


def render_html(
    result: dict[str, Any], figures: list[dict[str, Any]], missing: str | None = None
) -> str:
    """The page: ``result`` (metrics.json), ``figures`` (PNG data inline) and ``missing``, the
    sentence naming models not trained yet (:func:`missing_note`)."""
    env = Environment(
        loader=PackageLoader("aelab", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    template = env.get_template("report.html.j2")
    verdicts = [verdict(n, m) for n, m in result["models"].items()]
    return template.render(result=result, figures=figures, verdicts=verdicts, missing=missing)
