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
from aelab.analysis.spread import against, interval, n_seeds, plus_minus
from aelab.apps.report_figures import report_figures
from aelab.data.prepare import Split
from aelab.runs.open import open_runs
from aelab.runs.rundir import RunDir


def _pct(x: float) -> str:
    return f"{x:.1%}" if abs(x) < 0.1 else f"{x:.0%}"


def standing(m: dict[str, Any]) -> int:
    """-1 where a model's held-out error is below PCA's (beyond its seeds' 95% interval, with
    several), 1 where above, 0 where the interval straddles PCA's (or PCA is exact)."""
    ratio = m.get("pca_ratio")
    return 0 if ratio is None else against(ratio, interval(m, "pca_ratio"), 1.0)


def verdict(name: str, m: dict[str, Any]) -> str:
    """One sentence: did the model beat PCA with the same code size on held-out data? With
    several seeds, only where the 95% interval of its error's ratio to PCA's says so."""
    ae, pca, ratio = m["heldout"]["mse"], m["pca"]["mse"], m.get("pca_ratio")
    k, n = m["pca"]["n_components"], n_seeds(m)
    if ratio is None:
        return (
            f"PCA with {k} components reconstructs the held-out images exactly: {name} is not "
            "compared."
        )
    side = standing(m)
    where = (
        f"MSE {ae:.5f} vs {pca:.5f}, {_pct(abs(1 - ratio))} {'lower' if ratio < 1 else 'higher'}"
    )
    ci = interval(m, "pca_ratio")
    if ci is None:
        did = "beats" if side < 0 else "does not beat"
        return (
            f"{name} {did} PCA with {k} components on held-out images: {where} (one seed: its "
            "spread is unknown; --seeds 0,1,2 measures it)."
        )
    spread = f"95% interval of the ratio {ci[0]:.3f}–{ci[1]:.3f} over {n} seeds"
    if side == 0:
        return (
            f"{name} and PCA with {k} components are not distinguishable over {n} seeds on "
            f"held-out images: ratio {ratio:.3f} ({spread})."
        )
    did = "beats" if side < 0 else "does not beat"
    return f"{name} {did} PCA with {k} components on held-out images: {where} ({spread})."


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
    insides: bool = True,
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
                                rundir=own, legacy=legacy, insides=insides)  # fmt: skip
    folder = rundir.path
    opened = open_runs(folder, data=True, data_home=data_home, split=split, legacy=legacy)
    split, groups = opened.split, opened.groups
    runs = {name: next(iter(seeds.values())) for name, seeds in groups.items()}  # first seeds
    result, arrays = measure(groups, split, seed=seed)
    result["schedule"] = opened.workshop.label
    result["missing"] = opened.missing
    figures = report_figures(runs, split, result["models"], arrays, seed, insides=insides)
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
    models = result["models"]
    verdicts = [verdict(n, m) for n, m in models.items()]
    marks = {n: {-1: "good", 1: "bad"}.get(standing(m), "") for n, m in models.items()}
    auc_marks = {  # better than PCA at telling the unusual images only where the interval says so
        n: {1: "good", -1: "bad"}.get(
            against(m["anomaly"]["auc"], interval(m, "anomaly.auc"), m["anomaly"]["pca"]["auc"]), ""
        )
        for n, m in models.items()
        if "anomaly" in m
    }
    seeds = max((n_seeds(m) for m in models.values()), default=1)
    return template.render(
        result=result, figures=figures, verdicts=verdicts, missing=missing, marks=marks,
        auc_marks=auc_marks, seeds=seeds, pm=plus_minus,
    )  # fmt: skip
