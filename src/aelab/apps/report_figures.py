"""The report's figures, in the workshop notebook's order: each one a plot of arrays that
:func:`aelab.analysis.measure.measure` computed (plots receive arrays, never models), with the
title and the caption that tell a reader what to look for, in words true of this run's data
(:func:`aelab.analysis.interpret.words`: digits, faces or images; what was held out) and, where
a result would surprise, the sentence that reads it (:mod:`aelab.analysis.interpret`).

Each figure is drawn for the size it is shown at (:mod:`aelab.plots.style`); one wider than a
phone's screen is drawn a second time, narrow (``"narrow"``), for the page to show there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Container
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from aelab import plots
from aelab.analysis import anomaly, generate, interpret, metrics
from aelab.apps.report_inside import inside_figures
from aelab.data.prepare import Split
from aelab.plots.style import NARROW_WIDTH

TSNE_MAX_POINTS = 1000  # t-SNE is quadratic; larger sets are subsampled (seeded)
# 250 early-exaggeration iterations and 250 more, not sklearn's 1,000 in all: on a workshop's
# 800 Olivetti faces (pixels, each model's codes) the final KL divergence is 1-7% higher,
# trustworthiness within 0.005 and the share of faces whose nearest neighbour shows the same
# person within 0.01 of 1,000's, in 0.46-0.69 of the time (benchmarks/tsne_iterations.py)
TSNE_ITERATIONS = 500
N_EXAMPLES = 5
NARROW_FROM = 5.5  # inches: wider figures get a narrow version (at 358 px, text would be < 9 px)


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca",
                max_iter=TSNE_ITERATIONS)  # fmt: skip
    return tsne.fit_transform(x.reshape(len(x), -1))


def _pca2(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(x.reshape(len(x), -1))


def colours(names) -> dict[str, str]:
    """One colour per model, the same in every figure that tells models apart by colour."""
    return {name: f"C{i % 10}" for i, name in enumerate(names)}


def report_figures(
    runs,
    split: Split,
    results,
    arrays,
    seed,
    *,
    insides: bool = True,
    data=None,
    curve=None,
    partial: bool = False,
    drawn: Container[str] = (),
) -> list[dict[str, Any]]:
    """Every figure as ``{"file", "title", "caption", "figure"}``, in the notebook's order, with
    ``"narrow"`` (the figure drawn for a phone's screen) where it is wider than that and
    ``"notes"`` (sentences reading it) where a result surprises; ``data`` is ``metrics.json``'s
    ``"data"`` (the words of the captions), ``curve`` its ``"robustness"``.
    ``insides=False``: only the comparison with PCA and the learning curves; ``partial=True``:
    those and the reconstructions (the page written while a workshop trains). A figure of one
    run's alone has ``"own"``, ``(file, the run's folder)``; one the caller has from an earlier
    page (its ``"own"`` in ``drawn``) is not drawn again: its entry has ``"same": True`` and no
    ``"figure"``."""
    data = data or {}
    w = interpret.words(data)
    held = interpret.heldout_phrase(data)
    x_tr, x_te = split.train.images, split.heldout.images
    y_all = (
        None
        if split.train.labels is None
        else np.concatenate([split.train.labels, split.heldout.labels])
    )
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x_te), size=min(N_EXAMPLES, len(x_te)), replace=False)
    palette = colours(results)
    out: list[dict[str, Any]] = []

    def add(file, title, caption, draw: Callable[[bool], Figure], notes=(), own=None, **extra):
        for name, m in results.items():  # one model's insides: its first seed's, said so
            if file.endswith(f"_{name}.png") and len(m.get("seeds", ())) > 1:
                caption += f" Drawn from its first seed ({m['seeds'][0]}) of {len(m['seeds'])}."
        entry = {"file": file, "title": title, "caption": caption, **extra}
        if own is not None:  # one run's alone: the same picture on every page
            entry["own"] = (file, os.fspath(own.path))
            entry["same"] = entry["own"] in drawn
        if not entry.get("same"):
            entry["figure"] = figure = draw(False)
            if figure.get_size_inches()[0] > NARROW_FROM:
                entry["narrow"] = draw(True)
        entry["notes"] = [n for n in notes if n]
        out.append(entry)

    ratios = {n: (m["code_size"], m["pca_ratio"]) for n, m in results.items() if m["pca_ratio"]}
    if ratios:  # the headline: none where PCA is exact for every model
        spans = {n: tuple(results[n]["spread"]["pca_ratio"]["ci95"]) for n in ratios
                 if (results[n].get("spread", {}).get("pca_ratio") or {}).get("ci95")}  # fmt: skip
        add(
            "pca_ratio.png",
            "Each model against PCA",
            "Held-out error divided by PCA's with as many components as the model has code "
            "units, against the code size (both axes logarithmic). In the shaded region, below "
            f"the dashed line, the model's error is lower than PCA's on {w['things']} it never "
            "saw." + (" Bars: the 95% interval over its seeds." if spans else ""),
            lambda narrow: plots.pca_ratio(ratios, intervals=spans, colors=palette,
                                           width=NARROW_WIDTH if narrow else 5.6),
        )  # fmt: skip
    several = any(len(m.get("seeds", ())) > 1 for m in results.values())
    histories = {n: arrays[n].get("histories", [r.history]) for n, r in runs.items()}
    add(
        "learning_curves.png",
        "Learning curves",
        "Training loss (solid) and held-out loss (dashed) per epoch. A held-out curve that "
        "turns up while training keeps falling is overfitting; one still falling at the end "
        "means training stopped early."
        + (" With several seeds: their mean, in a band from the lowest to the highest seed."
           if several else ""),
        lambda narrow: plots.learning_curves(histories, title=None, cols=1 if narrow else 3),
    )  # fmt: skip
    if not insides:
        return out
    for name, run in runs.items():
        if run.model.draws_weights:
            w_in, w_out = run.model.weight_images()
            add(
                f"weights_{name}.png",
                f"{name}: weights as images",
                "Top: what first-layer encoder units look for; bottom: what last-layer decoder "
                f"units paint. Structure (strokes, parts of a {w['thing']}) means units learned "
                "features of the images; noise means they did not.",
                lambda narrow, a=w_in, b=w_out: plots.weight_tiles(
                    a, b, title=None, max_width=NARROW_WIDTH if narrow else None),
                own=run,
            )  # fmt: skip
    for name in runs:
        a, m = arrays[name], results[name]
        add(
            f"codes_{name}.png",
            f"{name}: held-out {w['things']}, codes, reconstructions",
            "Held-out originals (top), their codes drawn as small images (middle) and the "
            f"reconstructions (bottom). {held}",
            lambda narrow, a=a: plots.codes_and_reconstructions(
                x_te[pick], a["codes_te"][pick], a["x_hat"][pick], n=len(pick), title=None,
                max_width=NARROW_WIDTH if narrow else None),
            notes=[interpret.same_image_note(name, m, data)], own=runs[name],
        )  # fmt: skip
    if partial:
        return out
    for name, run in runs.items():
        _activations(add, name, run, arrays[name], results[name])
    for name, run in runs.items():
        if run.model.variational or run.model.discrete_codes:  # a prior, or a codebook, instead
            continue
        a = arrays[name]
        z1 = generate.random_codes(a["codes_tr"], 8, random_state=seed)
        x1 = run.decode(z1)
        add(
            f"generated_random_{name}.png",
            f"{name}: {w['things']} from random codes",
            "Each unit drawn in its observed range (Beta(0.5, 0.5) x range x 0.75, as the "
            f"notebook did) and decoded. Expect blurry, implausible {w['things']}: units are "
            "not independent.",
            lambda narrow, x=x1: plots.generated(x, title=None, ncols=4 if narrow else 8,
                                                 max_width=NARROW_WIDTH if narrow else None),
        )  # fmt: skip
        z2, _ = generate.pca_codes(a["codes_tr"], 8, n_components=16, random_state=seed)
        x2 = run.decode(z2)
        add(
            f"generated_pca_{name}.png",
            f"{name}: {w['things']} from a PCA of the codes",
            "Gaussian samples in a PCA (up to 16 components) of the training codes, mapped back "
            f"to codes and decoded. Respecting the codes' correlations gives more plausible "
            f"{w['things']}.",
            lambda narrow, x=x2: plots.generated(x, title=None, ncols=4 if narrow else 8,
                                                 max_width=NARROW_WIDTH if narrow else None),
        )  # fmt: skip
    x_all = np.concatenate([x_tr, x_te])
    sub = np.sort(rng.choice(len(x_all), size=min(TSNE_MAX_POINTS, len(x_all)), replace=False))
    if y_all is not None:
        pixels_tsne = None
        for name, run in runs.items():
            if run.recipe is None or not run.recipe.report_embeddings:
                continue
            codes = np.concatenate([arrays[name]["codes_tr"], arrays[name]["codes_te"]])[sub]
            if pixels_tsne is None:
                pixels_pca, pixels_tsne = _pca2(x_all[sub], seed), _tsne(x_all[sub], seed)
            panels = [
                ("PCA(X)", pixels_pca),
                (f"PCA({name} codes)", _pca2(codes, seed)),
                ("t-SNE(X)", pixels_tsne),
                (f"t-SNE({name} codes)", _tsne(codes, seed)),
            ]
            add(
                f"embeddings_{name}.png",
                f"{name}: pixels versus codes in 2-D",
                f"PCA and t-SNE of the raw pixels and of the {name} codes, coloured by "
                f"{w['label']} ({len(sub)} {w['things']}, training and held-out). Tighter "
                "single-colour clusters in the code panels mean the code separates "
                f"{w['group']} better than pixels do.",
                lambda narrow, p=panels: plots.embedding_panels(
                    p, y_all[sub], title=None, label_name=w["label"],
                    cols=2 if narrow else 4, panel=1.5 if narrow else 2.4),
            )  # fmt: skip
    for name in runs:
        a = arrays[name]
        if "denoised" not in a:
            continue
        d = results[name]["denoising"]
        add(
            f"denoising_{name}.png",
            f"{name}: noisy, denoised and clean {w['things']}",
            f"Held-out {w['things']} with {interpret.noise_phrase(d['noise'])} (top), their "
            "codes, the model's "
            f"output and the clean original. PSNR {d['noisy_psnr']:.1f} dB noisy → "
            f"{d['denoised_psnr']:.1f} dB denoised (higher: closer to the clean image).",
            lambda narrow, a=a, d=d: plots.denoising_panel(
                a["noisy"][pick], a["noisy_codes"][pick], a["denoised"][pick], x_te[pick],
                d["noisy_psnr"], d["denoised_psnr"], n=len(pick), title=None,
                max_width=NARROW_WIDTH if narrow else None),
            notes=[interpret.denoising_note(name, results[name], curve)],
        )  # fmt: skip
    if "robustness" in arrays:
        _robustness(add, arrays["robustness"], results, palette)
    detected = {n: arrays[n]["anomaly"] for n in runs if "anomaly" in arrays[n]}
    if detected:
        g = "people" if data.get("heldout") == "people" else "classes"
        add(
            "anomaly_scores.png",
            "Unusual images: reconstruction errors",
            f"Errors of unseen images of the training {g} (usual) and of the held-out {g} "
            f"(unusual), with the threshold set for a {anomaly.DEFAULT_FPR:.0%} false-positive "
            f"rate. The less the two overlap, the better the model tells new {g} from the ones "
            "it knows.",
            lambda narrow: plots.score_histograms(
                detected, title=None, cols=1 if narrow else 3,
                labels=(f"usual (training {g})", f"unusual (held-out {g})")),
        )  # fmt: skip
    for name in runs:  # the same images' calibrated maps, on one fixed scale
        if "anomaly_maps" in arrays[name]:
            add(*_anomaly_maps(name, arrays[name]["anomaly_maps"], results[name], g))
    for name, run in runs.items():
        if run.model.variational and run.model.latent_dim == 2:
            _vae_space(add, name, run, arrays[name], y_all, w)
    rows, titles = [], []
    i, j = (pick[0], pick[1]) if len(pick) > 1 else (0, 0)
    for name, run in runs.items():
        z = generate.interpolate(arrays[name]["codes_te"][i], arrays[name]["codes_te"][j], 8)
        rows.append(run.decode(z))
        titles.append(name)
    add(
        "interpolation.png",
        "Interpolation through the code space",
        f"Two held-out {w['things']} joined by a straight line in each model's code space, "
        "decoded at 8 steps. Sharp, plausible in-between images mean a well-organised code.",
        lambda narrow: plots.interpolation(rows, titles, title=None,
                                           max_width=NARROW_WIDTH if narrow else None),
    )  # fmt: skip
    inside_figures(add, runs, results, arrays, data)  # the "Looking inside" section
    return out


def _activations(add, name, run, a, m) -> None:
    """The notebook's bars of maximum activation per unit; for a variational model, the mean
    KL of each unit instead: what says whether a unit is in use."""
    if "kl_units" in a:
        kl = a["kl_units"]
        inactive = kl <= interpret.ACTIVE_KL
        add(
            f"activations_{name}.png",
            f"{name}: information per code unit",
            "The mean KL divergence of each unit's posterior from the prior over the held-out "
            f"images, in nats (log scale). A unit under the dashed line ({interpret.ACTIVE_KL} "
            "nats) is inactive: whatever the image, its code is the prior, so it carries "
            "nothing. Its maximum activation would not show it: a mean that barely moves still "
            "moves.",
            lambda narrow: plots.activation_bars(
                kl, inactive, title=None, ylabel="mean KL (nats)", dead_word="inactive",
                threshold=interpret.ACTIVE_KL, log_y=True,
                width=NARROW_WIDTH if narrow else None),
            notes=[interpret.collapse_note(name, m)],
        )  # fmt: skip
        return
    max_act = metrics.max_activation(a["codes_tr"])
    add(
        f"activations_{name}.png",
        f"{name}: maximum activation per code unit",
        "The largest value each code unit takes over the training images. A dead unit (red, "
        "marked ×) takes one value on every image: it carries no information, and the code "
        "is in effect that much smaller.",
        lambda narrow: plots.activation_bars(max_act, a["dead"], title=None,
                                             width=NARROW_WIDTH if narrow else None),
        notes=[interpret.dead_note(name, m)],
    )  # fmt: skip


def _robustness(add, curve, results, palette) -> None:
    """The corruption curve, each model's PCA beside it in its colour; the denoising models'
    standing in words, and the PSNRs of their kind of noise as a table."""
    pca_of = {n: f"pca-{m['pca']['n_components']}" for n, m in results.items()}
    notes, kind = [], "gaussian"
    for name, m in results.items():
        if "denoising" in m and name in curve["methods"]:
            kind = m["denoising"]["noise"].partition(":")[0]
            trained = interpret.noise_phrase(m["denoising"]["noise"])
            notes.append(f"{name} was trained on {trained}. Where it stands against the others:")
            notes += interpret.robustness_notes(curve, name)
    table = robustness_table(curve, list(results), kind if kind in curve["levels"] else None)
    add(
        "robustness.png",
        "Robustness to corruption",
        "Held-out PSNR of each reconstruction against the clean image, for corruptions of "
        "growing strength: Gaussian noise (its standard deviation), salt and pepper and "
        "masking (the share of pixels hit). Dotted: the corrupted input itself (at level 0 "
        "it is the clean image, off the scale); dashed: PCA with as many components as the "
        "model of its colour has code units. Higher is better.",
        lambda narrow: plots.robustness(curve, title=None, pca_of=pca_of, colors=palette,
                                        cols=1 if narrow else 2),
        notes=notes, table=table,
    )  # fmt: skip


def robustness_table(curve, models: list[str], kind: str | None) -> dict[str, Any] | None:
    """The PSNRs of one kind of corruption, above level 0, as ``{"kind", "levels", "rows":
    [(name, [dB...], best index)]}``: the corrupted input, then each model."""
    if kind is None:
        return None
    keep = [k for k, v in enumerate(curve["levels"][kind]) if v > 0]
    rows = [("corrupted input", [curve["input"][kind][k] for k in keep])]
    rows += [(n, [curve["methods"][n][kind][k] for k in keep]) for n in models
             if n in curve["methods"]]  # fmt: skip
    best = [max(range(len(rows)), key=lambda r: rows[r][1][c]) for c in range(len(keep))]
    return {
        "kind": interpret.KINDS.get(kind, kind),
        "levels": [curve["levels"][kind][k] for k in keep],
        "rows": [(n, values, [best[c] == r for c in range(len(keep))])
                 for r, (n, values) in enumerate(rows)],
    }  # fmt: skip


def _vae_space(add, name, run, a, y_all, w) -> None:
    """A two-unit VAE's latent means, and its decoder drawn over the region they occupy."""
    codes = np.concatenate([a["codes_tr"], a["codes_te"]])
    if y_all is not None:
        add(
            f"vae_latent_{name}.png",
            f"{name}: the 2-D latent space",
            f"Posterior means of training and held-out {w['things']}, coloured by {w['label']}. "
            f"A VAE keeps codes near N(0, I); {w['group']} that overlap here blend in the "
            "manifold below.",
            lambda narrow: plots.latent_scatter(codes, y_all, title=None,
                                                label_name=w["label"]),
        )  # fmt: skip
    grid, xs, ys = generate.manifold_grid(15, codes=codes)
    decoded = run.decode(grid)
    add(
        f"vae_manifold_{name}.png",
        f"{name}: decoded manifold",
        f"Codes on a 15×15 grid over the region the {w['things']}' codes occupy (z[0] from "
        f"{xs[0]:.2g} to {xs[-1]:.2g}, z[1] from {ys[-1]:.2g} to {ys[0]:.2g}: their 1st to 99th "
        "percentiles), decoded. Smooth change across the grid means the latent space is "
        "continuous. The notebook drew [-4, 4]² (generate.manifold_grid(15, 4.0)), where "
        "codes outside the images' region decode to what no image looks like.",
        lambda narrow: plots.manifold(decoded, xs, ys, title=None,
                                      side=NARROW_WIDTH if narrow else None),
    )  # fmt: skip


def _anomaly_maps(name: str, a: dict[str, Any], entry: dict[str, Any], g: str = "people"):
    """The anomaly section's gallery: file, title, caption (the guarantee, and the rate
    realised), figure."""
    m = entry["anomaly"]["maps"]
    caption = (
        f"The {a['n_normal']} most normal and the {len(a['images']) - a['n_normal']} most "
        f"unusual of the unseen images (of training {g} and held-out ones), each above its "
        f"calibrated map: every pixel's error against the same pixel's errors on "
        f"{m['n_calibration']} other unseen normal images (a conformal p-value), drawn as "
        "-log10 p on one fixed scale for every image, white at the per-pixel threshold "
        f"p={m['level']:g}; green boxes hold most of the image's error above the normal "
        "images' median there. The guarantee: on a normal image aligned and exchangeable with "
        f"the calibration images, each pixel is red with probability at most {m['level']:g} "
        f"(expected share {m['pixel_fpr_bound']:.3f}; realised on the unseen normal images: "
        f"{m['pixel_fpr']:.3f}; on the held-out ones: {m['unusual_pixel_rate']:.3f}). It is "
        "not a test of the whole image (a normal image has some red pixels), and says nothing "
        "of images framed or lit unlike the calibration images."
    )

    def figure(narrow: bool):
        return plots.anomaly_gallery(
            a["images"],
            a["significance"],
            a["level"],
            a["labels"],
            a["boxes"],
            a["n_normal"],
            title=None,
            cols=2 if narrow else None,
        )

    return f"anomaly_maps_{name}.png", f"{name}: calibrated anomaly maps", caption, figure
