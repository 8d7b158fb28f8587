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
import re
import shlex
from collections.abc import Callable
from typing import Any

import torch
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from aelab import plots
from aelab.analysis import interpret
from aelab.analysis.interpret import standing, verdict
from aelab.analysis.measure import measure
from aelab.analysis.spread import n_seeds, plus_minus
from aelab.apps import report_inside
from aelab.apps.report_figures import report_figures
from aelab.data.prepare import Split
from aelab.plots.style import PX_PER_INCH, size_px
from aelab.runs.open import open_runs
from aelab.runs.rundir import RunDir
from aelab.utils import threads

DPI = 2 * PX_PER_INCH  # PNGs of twice the CSS pixels they are shown at: sharp on dense screens
__all__ = ["DPI", "build_report", "missing_note", "render_html", "standing", "verdict"]


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


def training_note(missing: list[str]) -> str:
    """The line of a page written while the workshop trains: what is still to come."""
    return (
        f"Partial report: {', '.join(missing)} still training. This page is written again "
        "after each model; reload it. The corruption curve, embeddings and the looks inside "
        "come with the last."
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
    partial: bool = False,
    memo: dict[Any, Any] | None = None,
) -> dict[str, Any]:
    """Rebuild ``metrics.json``, ``figures/`` and ``report.html`` of a workshop run directory.

    Loads the saved models (no training), every file checked against the folder's manifest, and
    the data from ``data_home`` (never from a folder the run's files name), checked against each
    model's record of its split; ``split`` skips reloading the data. Writes only regular files
    inside ``out``, holding its lock (``rundir``: the caller's, when it holds one). The models of
    an interrupted workshop not trained yet are left out, and named (``"missing"``; on the page,
    with the command that trains them: :func:`missing_note`). ``legacy=True`` reads a run of
    aelab 0.1, which has no manifest, unchecked (see :func:`aelab.runs.open.open_runs`).
    ``partial=True`` is the page a workshop writes while it trains: the models trained so far,
    their table, learning curves and reconstructions only (no corruption curve, embeddings or
    insides: a few seconds), and a line saying the others are still training; ``memo`` (kept by
    the workshop between such pages, and given to its last report) measures each run once.
    """
    if rundir is None:
        with RunDir.resume(out, kind="workshop", legacy=legacy) as own:
            return build_report(own.path, split=split, seed=seed, data_home=data_home, log=log,
                                rundir=own, legacy=legacy, insides=insides,
                                partial=partial, memo=memo)  # fmt: skip
    folder = rundir.path
    opened = open_runs(folder, data=True, data_home=data_home, split=split, legacy=legacy)
    split, groups = opened.split, opened.groups
    runs = {name: next(iter(seeds.values())) for name, seeds in groups.items()}  # first seeds
    result, arrays = measure(groups, split, seed=seed, partial=partial, memo=memo,
                             image_groups=opened.image_groups)  # fmt: skip
    result["schedule"] = opened.workshop.label
    result["missing"] = opened.missing
    if partial:
        result["partial"] = True
    # a page written while a workshop trains keeps the pictures of one model's alone for the next
    kept = memo.setdefault("pictures", {}) if partial and memo is not None else {}
    figures = report_figures(runs, split, result["models"], arrays, seed, insides=insides,
                             data=result["data"], curve=result["robustness"],
                             partial=partial, drawn=kept)  # fmt: skip
    png_of: dict[str, bytes] = {}  # each figure's file
    drawn = []  # (where the picture goes, the figure): what this page renders
    for f in figures:
        if f.get("same"):  # drawn for an earlier page
            png_of[f["file"]], picture = kept[f["own"]]
            f.update(picture)
            continue
        drawn.append((f, f.pop("figure")))
        narrow = f.pop("narrow", None)
        if narrow is not None:  # for the page only: figures/ keeps one of each
            f["narrow"] = {}
            drawn.append((f["narrow"], narrow))
    rendered = plots.pngs([fig for _, fig in drawn], dpi=DPI, workers=render_workers())
    for (entry, fig), png in zip(drawn, rendered):
        width, height = size_px(fig)
        entry.update(data=base64.b64encode(png).decode("ascii"), width=width, height=height)
        if "file" in entry:
            png_of[entry["file"]] = png
    for f in figures:
        rundir.write(f"figures/{f['file']}", png_of[f["file"]], commit=False)
        own, same = f.pop("own", None), f.pop("same", None)
        if own is not None and not same and partial and memo is not None:
            kept[own] = png_of[f["file"]], {
                k: f[k] for k in ("data", "width", "height", "narrow") if k in f
            }  # fmt: skip
    rundir.write_json("metrics.json", result, commit=False)
    note = (training_note(opened.missing) if partial
            else missing_note(opened.missing, rundir.target))  # fmt: skip
    page = render_html(result, figures, note)
    rundir.write("report.html", page.encode("utf-8"), commit=False)
    rundir.manifest.write(folder)
    if log:
        log(f"wrote {rundir.target / 'report.html'}")
    return result


MAX_RENDER_WORKERS = 8  # a report holds about a hundred figures: more would mostly fork


def render_workers() -> int:
    """How many processes render a report's figures: the thread count the user fixed
    (``AELAB_THREADS``, ``OMP_NUM_THREADS``: :func:`aelab.utils.threads.policy`), else PyTorch's,
    one per core; at most :data:`MAX_RENDER_WORKERS`."""
    return min(threads.policy() or torch.get_num_threads(), MAX_RENDER_WORKERS)


FLAG = re.compile(r"(--[a-z][a-z-]*(?: [0-9][0-9.,]*| N\b)?)")


def _flags(text: str) -> Markup:
    """``text`` escaped, its command-line flags as code that never breaks across lines."""
    return Markup(FLAG.sub(r"<code>\1</code>", str(escape(text))))


def render_html(
    result: dict[str, Any], figures: list[dict[str, Any]], missing: str | None = None
) -> str:
    """The page: ``result`` (metrics.json), ``figures`` (PNG data inline) and ``missing``, the
    sentence naming models not trained yet (:func:`missing_note`)."""
    env = Environment(
        loader=PackageLoader("aelab", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters["flags"] = _flags
    template = env.get_template("report.html.j2")
    models = result["models"]
    verdicts = [verdict(n, m) for n, m in models.items()]
    notes = {
        n: interpret.model_notes(n, m, data=result["data"], curve=result.get("robustness"))
        for n, m in models.items()
    }
    marks = {n: {-1: "good", 1: "bad"}.get(standing(m), "") for n, m in models.items()}
    auc_marks = {  # better than PCA at telling the unusual images only where the interval says so
        n: {1: "good", -1: "bad"}.get(
            interpret.side(m, "anomaly.auc", m["anomaly"]["pca"]["auc"], interpret.LEVEL_AUC), ""
        )
        for n, m in models.items()
        if "anomaly" in m
    }
    seeds = max((n_seeds(m) for m in models.values()), default=1)
    return template.render(
        result=result, figures=figures, verdicts=verdicts, notes=notes, missing=missing,
        marks=marks, auc_marks=auc_marks, seeds=seeds, pm=plus_minus,
        heldout=interpret.heldout_phrase(result["data"]), words=interpret.words(result["data"]),
        inside_notes=report_inside.notes(models, result["data"]),
        inside=any("inside" in m for m in models.values()),
    )  # fmt: skip
