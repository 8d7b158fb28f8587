"""The report's figures, in the workshop notebook's order: each one a plot of arrays that
:func:`aelab.analysis.measure.measure` computed (plots receive arrays, never models), with the
title and the caption that tell a reader what to look for."""

from __future__ import annotations

from typing import Any

import numpy as np

from aelab import plots
from aelab.analysis import anomaly, generate, metrics
from aelab.data.prepare import Split

TSNE_MAX_POINTS = 1000  # t-SNE is quadratic; larger sets are subsampled (seeded)
N_EXAMPLES = 5


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(
        x.reshape(len(x), -1)
    )


def _pca2(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(x.reshape(len(x), -1))


def report_figures(
    runs, split: Split, results, arrays, seed, *, insides: bool = True
) -> list[dict[str, Any]]:
    """Every figure as ``{"file", "title", "caption", "figure"}``, in the notebook's order;
    ``insides=False``: only the comparison with PCA and the learning curves."""
    x_tr, x_te = split.train.images, split.heldout.images
    y_all = (
        None
        if split.train.labels is None
        else np.concatenate([split.train.labels, split.heldout.labels])
    )
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x_te), size=min(N_EXAMPLES, len(x_te)), replace=False)
    out: list[dict[str, Any]] = []

    def add(file, title, caption, figure):
        for name, m in results.items():  # one model's insides: its first seed's, said so
            if file.endswith(f"_{name}.png") and len(m.get("seeds", ())) > 1:
                caption += f" Drawn from its first seed ({m['seeds'][0]}) of {len(m['seeds'])}."
        out.append({"file": file, "title": title, "caption": caption, "figure": figure})

    ratios = {n: (m["code_size"], m["pca_ratio"]) for n, m in results.items() if m["pca_ratio"]}
    if ratios:  # the headline: none where PCA is exact for every model
        add(
            "pca_ratio.png",
            "Each model against PCA",
            "Held-out error divided by PCA's with as many components as the model has code "
            "units. Below the dashed line the model's error is lower than PCA's on images it "
            "never saw.",
            plots.pca_ratio(ratios),
        )
    add(
        "learning_curves.png",
        "Learning curves",
        "Training loss (solid) and held-out loss (dashed) per epoch. A held-out curve that "
        "turns up while training keeps falling is overfitting."
        + (
            " With several seeds: their mean, in a band from the lowest to the highest seed."
            if any(len(m.get("seeds", ())) > 1 for m in results.values())
            else ""
        ),
        plots.learning_curves(
            {n: arrays[n].get("histories", [r.history]) for n, r in runs.items()}
        ),
    )
    if not insides:
        return out
    for name, run in runs.items():
        if run.model.draws_weights:
            w_in, w_out = run.model.weight_images()
            add(
                f"weights_{name}.png",
                f"{name}: weights as images",
                "Top: what first-layer encoder units look for; bottom: what last-layer decoder "
                "units paint. Face-like blobs mean units learned parts; noise means they did not.",
                plots.weight_tiles(w_in, w_out, title=f"{name}: encoder and decoder weights"),
            )
    for name in runs:
        a = arrays[name]
        add(
            f"codes_{name}.png",
            f"{name}: held-out images, codes, reconstructions",
            "Held-out originals (top), their codes drawn as small images (middle) and the "
            "reconstructions (bottom). These people or samples were never trained on.",
            plots.codes_and_reconstructions(
                x_te[pick], a["codes_te"][pick], a["x_hat"][pick], n=len(pick),
                title=f"{name}: originals / codes / reconstructions",
            ),
        )  # fmt: skip
    for name in runs:
        a = arrays[name]
        add(
            f"activations_{name}.png",
            f"{name}: maximum activation per code unit",
            "The largest value each code unit takes over the training images. Units that never "
            "vary (dead) carry no information: the code is effectively smaller.",
            plots.activation_bars(metrics.max_activation(a["codes_tr"]), a["dead"],
                                  title=f"{name}: maximum activation per unit"),
        )  # fmt: skip
    for name, run in runs.items():
        if run.model.variational or run.model.discrete_codes:  # a prior, or a codebook, instead
            continue
        a = arrays[name]
        z1 = generate.random_codes(a["codes_tr"], 8, random_state=seed)
        add(
            f"generated_random_{name}.png",
            f"{name}: faces from random codes",
            "Each unit drawn in its observed range (Beta(0.5, 0.5) x range x 0.75, as the "
            "notebook did) and decoded. Expect blurry, implausible images: units are not "
            "independent.",
            plots.generated(run.decode(z1), title=f"{name}: decoded random codes"),
        )
        z2, _ = generate.pca_codes(a["codes_tr"], 8, n_components=16, random_state=seed)
        add(
            f"generated_pca_{name}.png",
            f"{name}: faces from a PCA of the codes",
            "Gaussian samples in a PCA (up to 16 components) of the training codes, mapped back "
            "to codes and decoded. Respecting the codes' correlations gives more plausible images.",
            plots.generated(run.decode(z2), title=f"{name}: decoded PCA samples of the codes"),
        )
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
                f"PCA and t-SNE of the raw pixels and of the {name} codes, coloured by label "
                f"({len(sub)} images, training and held-out). Tighter single-colour clusters in "
                "the code panels mean the code separates people or classes better than pixels.",
                plots.embedding_panels(panels, y_all[sub], title=f"{name}: pixels vs codes"),
            )
    for name in runs:
        a = arrays[name]
        if "denoised" not in a:
            continue
        d = results[name]["denoising"]
        add(
            f"denoising_{name}.png",
            f"{name}: denoising",
            f"Held-out images with {d['noise']} noise, their codes, the denoised output and the "
            f"clean original. PSNR {d['noisy_psnr']:.1f} dB noisy -> {d['denoised_psnr']:.1f} "
            "dB denoised.",
            plots.denoising_panel(
                a["noisy"][pick], a["noisy_codes"][pick], a["denoised"][pick], x_te[pick],
                d["noisy_psnr"], d["denoised_psnr"], n=len(pick),
            ),
        )  # fmt: skip
    if "robustness" in arrays:
        add(
            "robustness.png",
            "Robustness to corruption",
            "Held-out PSNR of each reconstruction against the clean image, for corruptions of "
            "growing strength: Gaussian noise (its standard deviation), salt and pepper and "
            "masking (the share of pixels hit). Dotted: the corrupted input itself; dashed: PCA "
            "at each model's code size. Higher is better; a denoising model should lead.",
            plots.robustness(arrays["robustness"]),
        )
    detected = {n: arrays[n]["anomaly"] for n in runs if "anomaly" in arrays[n]}
    if detected:
        add(
            "anomaly_scores.png",
            "Unusual images: reconstruction errors",
            "Errors of unseen images of the training people (usual) and of the held-out people "
            f"(unusual), with the threshold set for a {anomaly.DEFAULT_FPR:.0%} false-positive "
            "rate. The less the two "
            "overlap, the better the model tells a new person from the ones it knows.",
            plots.score_histograms(detected),
        )
    for name, run in runs.items():
        if not run.model.variational or run.model.latent_dim != 2:
            continue
        a = arrays[name]
        if y_all is not None:
            add(
                f"vae_latent_{name}.png",
                f"{name}: the 2-D latent space",
                "Posterior means of training and held-out images, coloured by label. A VAE "
                "keeps codes near N(0, I); classes that overlap here blend in the manifold below.",
                plots.latent_scatter(
                    np.concatenate([a["codes_tr"], a["codes_te"]]), y_all,
                    title=f"{name}: latent means",
                ),
            )  # fmt: skip
        grid, xs, ys = generate.manifold_grid(15, 4.0)
        add(
            f"vae_manifold_{name}.png",
            f"{name}: decoded manifold",
            "Codes on a 15x15 grid over [-4, 4]^2 decoded. Smooth change across the grid means "
            "the latent space is continuous: every point decodes to a plausible image.",
            plots.manifold(run.decode(grid), xs, ys, title=f"{name}: decoded 15x15 grid"),
        )
    rows, titles = [], []
    i, j = (pick[0], pick[1]) if len(pick) > 1 else (0, 0)
    for name, run in runs.items():
        z = generate.interpolate(arrays[name]["codes_te"][i], arrays[name]["codes_te"][j], 8)
        rows.append(run.decode(z))
        titles.append(name)
    add(
        "interpolation.png",
        "Interpolation through the code space",
        "Two held-out images joined by a straight line in each model's code space, decoded at "
        "8 steps. Sharp, plausible in-between images mean a well-organised code.",
        plots.interpolation(rows, titles),
    )
    return out
