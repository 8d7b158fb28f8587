"""``aelab compare A B ...``: runs, workshops or groups of seeds side by side, every number with
its interval, and for two groups of seeds a test of the difference.

Each folder is opened (:func:`aelab.runs.open.open_runs`) with its data, and every model in it
is measured on its held-out images (:func:`aelab.analysis.measure.measure`); folders whose
held-out images differ are refused, since their numbers would not be comparable. With exactly
two entries, each of at least two seeds, every number gets Welch's two-sided test
(:func:`aelab.analysis.spread.welch`) and a sentence: "A's held-out MSE is lower than B's
(p = 0.003, 3 seeds each)" or "no difference shown".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aelab.analysis.measure import measure
from aelab.analysis.spread import summary, welch
from aelab.runs.open import open_runs

ALPHA = 0.05  # the test's level: a difference is named below it
# what is compared: the number's dotted path in a model's record, its name, which way is better
METRICS = (
    ("heldout.mse", "held-out MSE", "lower"),
    ("pca_ratio", "MSE ÷ PCA's", "lower"),
    ("heldout.psnr", "held-out PSNR", "higher"),
    ("heldout.ssim", "held-out SSIM", "higher"),
    ("heldout.knn_accuracy", "1-NN accuracy", "higher"),
    ("anomaly.auc", "anomaly ROC-AUC", "higher"),
    ("dead_units", "dead units", "lower"),
    ("final_loss", "final training loss", "lower"),
)


def _value(m: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        m = m.get(key) if isinstance(m, dict) else None
    return m


def compare(
    paths: list[str | os.PathLike],
    *,
    data_home: str | os.PathLike | None = None,
    legacy: bool = False,
) -> dict[str, Any]:
    """Every model of every folder in ``paths``, measured on the held-out images they share.

    Returns ``{"entries": {label: {"path", "model", "seeds", "metrics": {path: summary}}},
    "tests": [{"metric", "a", "b", ...Welch..., "sentence"}]}``; a label is the model's name, or
    ``FOLDER:MODEL`` where names repeat.
    """
    if len(paths) < 1:
        raise ValueError("compare needs at least one run, workshop or group of seeds")
    measured, heldout = [], None
    for path in paths:
        opened = open_runs(path, data=True, data_home=data_home, legacy=legacy)
        split = opened.in_memory("compare")
        fingerprint = split.fingerprint["heldout"]
        if heldout is not None and fingerprint != heldout[1]:
            raise ValueError(
                f"run='{path}' holds out other images than run='{heldout[0]}': their numbers are "
                "not comparable; compare runs of the same data and split"
            )
        heldout = heldout or (path, fingerprint)
        result, _ = measure(opened.groups, split, robustness=False)
        measured += [(Path(path), name, m) for name, m in result["models"].items()]
    names = [name for _, name, _ in measured]
    entries = {}
    for folder, name, m in measured:
        label = name if names.count(name) == 1 else f"{folder.name}:{name}"
        entries[label] = {"path": str(folder), "model": name, "seeds": m["seeds"], "metrics": {}}
        for path, _, _ in METRICS:
            value = _value(m, path)
            if value is not None:
                s = m["spread"].get(path) or summary([value])
                entries[label]["metrics"][path] = s
    tests = _tests(entries) if len(entries) == 2 else []
    return {"entries": entries, "tests": tests}


def _tests(entries: dict[str, Any]) -> list[dict[str, Any]]:
    (a, ea), (b, eb) = entries.items()
    out = []
    for path, what, better in METRICS:
        sa, sb = ea["metrics"].get(path), eb["metrics"].get(path)
        if sa is None or sb is None:
            continue
        if sa["n"] < 2 or sb["n"] < 2:
            sentence = (
                f"{what}: no test with one seed on a side ({sa['n']} and {sb['n']}); train "
                "with --seeds 0,1,2 to compare"
            )
            out.append({"metric": path, "a": a, "b": b, "sentence": sentence})
            continue
        test = welch(sa["values"], sb["values"])
        seeds = f"{sa['n']} seeds each" if sa["n"] == sb["n"] else f"{sa['n']} and {sb['n']} seeds"
        if test["p"] < ALPHA:
            lower = a if test["difference"] < 0 else b
            higher = b if lower == a else a
            first, second = (lower, higher) if better == "lower" else (higher, lower)
            word = "lower" if better == "lower" else "higher"
            sentence = f"{first}'s {what} is {word} than {second}'s (p = {test['p']:.3g}, {seeds})"
        else:
            sentence = (
                f"{what}: no difference shown between {a} and {b} (p = {test['p']:.3g}, {seeds})"
            )
        out.append({"metric": path, "a": a, "b": b, **test, "sentence": sentence})
    return out


def format_table(result: dict[str, Any]) -> str:
    """The comparison as plain text: a row per number, a column per entry, then the tests."""
    labels = list(result["entries"])
    width = max([22, *(len(label) + 2 for label in labels)])
    lines = [f"{'':<22}" + "".join(f"{label:>{width}}" for label in labels)]
    seeds = [str(len(e["seeds"])) for e in result["entries"].values()]
    lines.append(f"{'seeds':<22}" + "".join(f"{s:>{width}}" for s in seeds))
    for path, what, _ in METRICS:
        cells = []
        for e in result["entries"].values():
            s = e["metrics"].get(path)
            if s is None:
                cells.append("—")
            elif s["std"] is None:
                cells.append(f"{s['mean']:.5g}")
            else:
                cells.append(f"{s['mean']:.5g} ± {s['std']:.2g}")
        if any(c != "—" for c in cells):
            lines.append(f"{what:<22}" + "".join(f"{c:>{width}}" for c in cells))
    lines.append("mean ± standard deviation over each entry's seeds")
    lines += [t["sentence"] for t in result["tests"]]
    return "\n".join(lines)


def render_html(result: dict[str, Any]) -> str:
    """The comparison as one self-contained page."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("aelab", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    rows = [r for r in METRICS if any(r[0] in e["metrics"] for e in result["entries"].values())]
    return env.get_template("compare.html.j2").render(result=result, metrics=rows)


__all__ = ["ALPHA", "METRICS", "compare", "format_table", "render_html"]
