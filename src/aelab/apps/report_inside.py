"""The report's "Looking inside" section: each model's most useful units, whether its units come
back across seeds, nearest neighbours by code and by pixels, a morph along an attribute
direction, and once per report what the error numbers miss. Arrays from
:mod:`aelab.analysis.inside_measure` (through :func:`aelab.analysis.measure.measure`), drawn by
:mod:`aelab.plots.inside`; the section's table and sentences come from ``metrics.json``'s
``"inside"`` of each model (:func:`notes`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from aelab.analysis import keeps
from aelab.plots import inside
from aelab.plots.style import NARROW_WIDTH, finish, tile_inches

SHOWN_UNITS = 6  # the units a model's figure draws, most useful first
WIDE_IMAGES, NARROW_IMAGES = 6, 3  # images that activate a unit most (and least), a row
SECTION = "inside"


def notes(results: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
    """The section's sentences: what it leaves out for which model, and why."""
    out = []
    one_seed = [n for n, m in results.items() if len(m.get("seeds", ())) < 2]
    if one_seed:
        out.append(
            "Whether units come back across seeds needs several seeds (aelab run --seeds 0,1,2); "
            f"{', '.join(one_seed)} {'has' if len(one_seed) == 1 else 'have'} one."
        )
    discrete = [n for n, m in results.items() if m.get("inside", {}).get("skipped")]
    if discrete:
        out.append(
            f"{', '.join(discrete)}: codes index a codebook, so no unit pages, stability, "
            "retrieval by code or morph."
        )
    if not data.get("labelled", True):
        out.append("The images have no labels, so no preservation score, precision@5 or morph.")
    groups = data.get("groups")
    if groups is not None and groups.get("images") is None:
        out.append(
            f"{groups['source']} leaves fewer than two groups of two images or more among the "
            "held-out images and among the training images, so no attribute directions."
        )
    return out


def _pages(
    a: dict[str, Any], x: np.ndarray, name: str, k: int, narrow: bool = False
) -> list[dict[str, Any]]:
    """The arguments of :func:`aelab.plots.inside.unit_page` for the most useful units, ``k``
    images a row; ``narrow`` (a phone's screen) breaks each title in two lines, which would
    otherwise run past the figure's sides."""
    page = a["pages"]
    out = []
    sep = "\n" if narrow else " "
    for i in page["order"][:SHOWN_UNITS]:
        out.append({
            "direction": page["directions"][i], "top": x[page["top"][i][:k]],
            "bottom": x[page["bottom"][i][:k]], "counts": page["histograms"][i],
            "edges": page["edges"][i],
            "title": f"{name}, unit {i + 1}:{sep}usefulness {page['usefulness'][i]:.3g}, "
                     f"density {page['density'][i]:.2f}" + (" (dead)" if page["dead"][i] else ""),
        })  # fmt: skip
    return out


def inside_figures(add, runs, results, arrays, data) -> None:
    """Add the section's figures (``add``: :func:`aelab.apps.report_figures.report_figures`'s)."""
    shared = arrays.get("inside")
    if shared is None:
        return
    x, labels = shared["x"], shared["labels"]
    things = "images" if data.get("kind") is None else data["kind"]
    label = {"faces": "person", "digits": "digit"}.get(things, "class")
    side = tile_inches(*x.shape[-2:])
    for name in runs:
        a, m = arrays[name].get("inside", {}), results[name].get("inside", {})
        if "pages" not in a:
            continue
        more = m["n_units"] - min(SHOWN_UNITS, m["n_units"])
        add(
            f"units_{name}.png",
            f"{name}: its most useful units",
            "Each unit's page, most useful first: its decoder direction (what moving that unit "
            "alone paints: red brighter, blue darker), the held-out images that activate it "
            "most and least, and its activation over the held-out images. Usefulness: the share "
            "of the pixel variance its loss costs when set to zero; density: the share of "
            "images where it is active. "
            + (f"{more} more units are not drawn (metrics.json lists the top "
               f"{len(m['units'])}); aelab explore shows every unit's page." if more else
               "aelab explore shows the same pages, one at a time."),
            lambda narrow, a=a, name=name: finish(inside.unit_pages(
                _pages(a, x, name, NARROW_IMAGES if narrow else WIDE_IMAGES, narrow),
                tile=NARROW_WIDTH / (NARROW_IMAGES + 4) if narrow else side)),
            section=SECTION,
        )  # fmt: skip
    for name in runs:
        a, m = arrays[name].get("inside", {}), results[name].get("inside", {})
        if "stability" not in a:
            continue
        s = m["stability"]
        add(
            f"stability_{name}.png",
            f"{name}: do its units come back across seeds?",
            f"Each unit's decoder direction matched one-to-one (Hungarian) to those of the "
            f"other {s['seeds'] - 1} seed(s), by absolute cosine similarity, beside PCA's "
            "components with as many components, matched across bootstrap resamples of the "
            f"training images. Mean: {s['mean']:.2f} for the units, {s['pca_mean']:.2f} for "
            "PCA. Units near 1 are found again whatever the seed; units near 0 are not.",
            lambda narrow, s=a["stability"], n=s["seeds"]: finish(
                inside.stability_histogram(s["model"], s["pca"], seeds=n, title=None)),
            section=SECTION,
        )  # fmt: skip
    for name in runs:
        a, m = arrays[name].get("inside", {}), results[name].get("inside", {})
        if "neighbours" not in a:
            continue
        nb, p = a["neighbours"], m["precision_at_5"]
        q = nb["query"]
        add(
            f"neighbours_{name}.png",
            f"{name}: nearest neighbours by code and by pixels",
            f"A held-out image (left) and its {len(nb['by_code'])} nearest held-out neighbours "
            f"by {name}'s code (top) and by pixels (bottom); green: the same {label}, red: "
            f"another (an image's mirror left out). Precision@5 over the held-out images: "
            f"{p['codes']:.2f} by code, {p['pixels']:.2f} by pixels, {p['pca']:.2f} by PCA's "
            "code of the same size.",
            lambda narrow, nb=nb, q=q, name=name: finish(inside.neighbours(
                x[q], x[nb["by_code"]], x[nb["by_pixels"]], title=None,
                code_hits=list(labels[nb["by_code"]] == labels[q]),
                pixel_hits=list(labels[nb["by_pixels"]] == labels[q]),
                width=NARROW_WIDTH if narrow else None)),
            section=SECTION,
        )  # fmt: skip
    for name in runs:
        a = arrays[name].get("inside", {})
        if "morph" not in a:
            continue
        mo = a["morph"]
        n = len(mo["images"])
        tags = [f"{mo['start']}"] + [""] * (n - 2) + [f"→ {mo['to']}"]
        add(
            f"morph_{name}.png",
            f"{name}: from one {label} to another",
            f"A held-out image of {label} {mo['start']} (left), its code moved in {n - 1} even "
            f"steps along the mean code of {label} {mo['to']} minus that of {label} {mo['start']} "
            "(over the held-out images), decoded. A smooth change that ends looking like "
            f"{label} {mo['to']} means the code holds the difference in one direction.",
            lambda narrow, images=mo["images"], tags=tags: finish(inside.strip(
                images, tags, title=None, width=NARROW_WIDTH if narrow else None)),
            section=SECTION,
        )  # fmt: skip
    _groups(add, runs, results, arrays, label)
    _misleading(add, x)


def _groups(add, runs, results, arrays, label: str) -> None:
    """Each model's morphs along its groups' attribute directions (the user's groups, else the
    data's labels)."""
    for name in runs:
        a, m = arrays[name].get("inside", {}), results[name].get("inside", {})
        if "groups" not in a:
            continue
        g, gm = a["groups"], m["groups"]
        user = gm["source"] != "labels"
        what = f"the groups of {gm['source']}" if user else f"each {label}"
        named = ", ".join(map(str, g["names"]))
        fallback = (
            ""
            if gm["images"] == "held-out"
            else (" (the held-out images hold fewer than two groups of two images or more)")
        )
        add(
            f"groups_{name}.png",
            f"{name}: along the directions of {what}",
            f"Each group's attribute direction: the mean code of its images minus the mean code "
            f"of all {gm['n_images']} grouped images, codes taken on the {gm['images']} "
            f"images{fallback}; {gm['n_groups']} groups. A held-out image's code moved t times "
            f"along the direction of the first {len(g['names'])} groups ({named}; a row each), "
            "decoded: t = 0 (middle) is its reconstruction, t = 1 adds the group's offset from "
            "the mean. aelab explore moves any group's direction with a slider.",
            lambda narrow, g=g: finish(inside.morph_grid(
                g["images"], [str(n) for n in g["names"]], [f"t = {t:+g}" for t in g["t"]],
                title=None, width=NARROW_WIDTH if narrow else None)),
            section=SECTION,
        )  # fmt: skip


def _misleading(add, x: np.ndarray) -> None:
    """Once per report: a held-out image changed four ways, with MSE and SSIM."""
    changed = keeps.misleading_mse(x[0])
    images = np.stack([x[0], *[c["image"] for c in changed]])
    tags = ["original"] + [
        f"{c['change'].replace('one pixel', '1 px')}\nMSE {c['mse']:.3f}\nSSIM {c['ssim']:.2f}"
        for c in changed
    ]
    worst = max(changed, key=lambda c: c["mse"])["change"]
    add(
        "misleading_mse.png",
        "What the error numbers miss",
        "A held-out image changed four ways, with each change's MSE and SSIM against the "
        f"original. Here the largest MSE is that of the image {worst}"
        + (": a one-pixel shift, which a person hardly notices, costs more than a blur or a "
           "hidden patch. A low MSE is not the same as a faithful image; SSIM, which compares "
           "local structure, reads such changes differently." if worst.startswith("shifted")
           else ". MSE weighs every pixel alike; SSIM compares local structure."),
        lambda narrow: finish(inside.strip(images, tags, title=None, label_lines=3,
                                           width=NARROW_WIDTH if narrow else 6.5,
                                           cols=3 if narrow else None)),
        section=SECTION,
    )  # fmt: skip


__all__ = ["inside_figures", "notes"]
