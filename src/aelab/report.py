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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jinja2 import Environment, PackageLoader, select_autoescape

from . import generate, metrics, plots
from ._version import __version__
from .noise import parse_noise
from .rundir import RunDir, check_name
from .runs import Run, Split, check_split, has_weights, load_run

TSNE_MAX_POINTS = 1000  # t-SNE is quadratic; larger sets are subsampled (seeded)
N_EXAMPLES = 5
EXACT_MSE = 1e-10  # PCA's held-out error below this: as many components as pixels, exact


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(
        x.reshape(len(x), -1)
    )


def _pca2(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(x.reshape(len(x), -1))


def _knn(codes_tr, codes_te, split: Split, by_people: bool, groups) -> float | None:
    y_tr, y_te = split.train.labels, split.heldout.labels
    if y_te is None or len(codes_te) < 2:
        return None
    if by_people:  # unseen people: does the code put a person's other images nearest?
        return metrics.knn_accuracy(codes_te, y_te, groups=groups)
    return metrics.knn_accuracy(codes_te, y_te, reference=codes_tr, reference_labels=y_tr)


def _corrupt(x: np.ndarray, spec: str, seed: int) -> np.ndarray:
    noise = parse_noise(spec)
    g = torch.Generator().manual_seed(seed)
    return noise(torch.from_numpy(x), generator=g).numpy()


def evaluate(
    runs: dict[str, Run], split: Split, *, seed: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics of every model on the held-out set, and the arrays the figures need."""
    x_tr, x_te = split.train.images, split.heldout.images
    if len(x_te) == 0:
        raise ValueError("the run has no held-out images; use a split with a held-out set")
    spec = next(iter(runs.values())).data_spec
    by_people = spec.split_kwargs().get("holdout_people") is not None
    groups = None
    if spec.mirror:  # an image and its mirror are one sample: they must not vote for each other
        groups = np.tile(np.arange(len(x_te) // 2), 2)
    results: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    for name, run in runs.items():
        code_size = run.model.latent_dim
        codes_tr, codes_te = run.encode(x_tr), run.encode(x_te)
        x_hat = run.decode(codes_te)
        # PCA with as many components as the code, capped by what the training set allows
        n_components = min(code_size, len(x_tr), int(np.prod(x_tr.shape[1:])))
        pca = metrics.pca_baseline(x_tr, x_te, n_components=n_components)
        dead = metrics.dead_units(codes_tr)
        history = run.history
        entry = {
            "code_size": code_size,
            "epochs": len(history),
            "train_seconds": float(sum(r["seconds"] for r in history)),
            "final_loss": history[-1]["loss"] if history else None,
            "dead_units": int(dead.sum()),
            "heldout": {
                **metrics.reconstruction_scores(x_te, x_hat),
                "knn_accuracy": _knn(codes_tr, codes_te, split, by_people, groups),
            },
            "pca": {
                "n_components": n_components,
                **metrics.reconstruction_scores(x_te, pca.x_test_hat),
                "knn_accuracy": _knn(pca.codes_train, pca.codes_test, split, by_people, groups),
            },
        }
        # None where PCA is exact (as many components as pixels): no ratio means anything there
        pca_mse = entry["pca"]["mse"]
        entry["pca_ratio"] = entry["heldout"]["mse"] / pca_mse if pca_mse > EXACT_MSE else None
        a: dict[str, Any] = {
            "codes_tr": codes_tr,
            "codes_te": codes_te,
            "x_hat": x_hat,
            "dead": dead,
        }
        noise = run.train_config.noise
        if noise:
            noisy = _corrupt(x_te, noise, seed)
            denoised = run.reconstruct(noisy)
            entry["denoising"] = {
                "noise": noise,
                "noisy_psnr": metrics.psnr(x_te, np.clip(noisy, 0, 1)),
                "denoised_psnr": metrics.psnr(x_te, denoised),
            }
            a.update(noisy=noisy, noisy_codes=run.encode(noisy), denoised=denoised)
        extra = run.extra_metrics(x_te)  # the family's own (models.base.extra_metrics)
        if extra:
            entry["family"] = extra
        results[name] = entry
        arrays[name] = a
    data = {
        "name": spec.source,
        "n_train": len(x_tr),
        "n_heldout": len(x_te),
        "image_shape": list(split.train.image_shape),
        "split": {
            **spec.split_kwargs(),
            "mirror": spec.mirror,
            "seed": spec.seed,
            "knn": (
                "1-NN leave-one-out among held-out images (unseen people; mirrors excluded)"
                if by_people
                else "1-NN of held-out codes against training codes"
            ),
        },
    }
    return {"aelab": __version__, "data": data, "models": results}, arrays


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


def _figures(runs, split, results, arrays, seed) -> list[dict[str, Any]]:
    """Every figure as ``{"file", "title", "caption", "figure"}``, in the notebook's order."""
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
        "turns up while training keeps falling is overfitting.",
        plots.learning_curves({n: r.history for n, r in runs.items()}),
    )
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


def workshop_runs(folder: Path, workshop: Any, device: str = "cpu") -> dict[str, Run]:
    """The trained models of the workshop in ``folder``, whose ``workshop.json`` holds
    ``workshop``, in its order; a model folder that is a symbolic link is refused."""
    models = workshop.get("models") if isinstance(workshop, dict) else None
    if not isinstance(models, list):
        raise ValueError(f"{folder / 'workshop.json'}: 'models' is not a list of model names")
    runs = {}
    for name in models:
        sub = folder / check_name(name, "model")
        if sub.is_symlink():
            raise ValueError(f"'{sub}' is a symbolic link; a workshop's models are its own folders")
        if (sub / "config.json").is_file() and has_weights(sub):
            runs[name] = load_run(sub, device)
    if not runs:
        raise ValueError(f"run='{folder}' holds no trained model yet")
    return runs


def build_report(
    out: str | os.PathLike,
    *,
    split: Split | None = None,
    seed: int = 0,
    data_home: str | None = None,
    log: Callable[[str], None] | None = None,
    rundir: RunDir | None = None,
) -> dict[str, Any]:
    """Rebuild ``metrics.json``, ``figures/`` and ``report.html`` of a workshop run directory.

    Loads the saved models (no training), every file checked against the folder's manifest, and
    the data from ``data_home`` (never from a folder the run's files name), checked against each
    model's record of its split; ``split`` skips reloading the data. Writes only regular files
    inside ``out``, holding its lock (``rundir``: the caller's, when it holds one).
    """
    if rundir is None:
        with RunDir.resume(out, kind="workshop") as own:
            return build_report(own.path, split=split, seed=seed, data_home=data_home, log=log,
                                rundir=own)  # fmt: skip
    folder = rundir.path
    workshop = rundir.read_json("workshop.json")
    runs = workshop_runs(folder, workshop)
    if split is None:
        split = next(iter(runs.values())).data(data_home, carve=False)
    for name, run in runs.items():
        check_split(run.config, split, folder / name)
    result, arrays = evaluate(runs, split, seed=seed)
    # the schedule's name; workshops written before 0.2 called it "preset"
    result["schedule"] = workshop.get("schedule", workshop.get("preset"))
    figures = _figures(runs, split, result["models"], arrays, seed)
    for f in figures:
        png = plots.png_bytes(f.pop("figure"))
        rundir.write(f"figures/{f['file']}", png, commit=False)
        f["data"] = base64.b64encode(png).decode("ascii")
    rundir.write_json("metrics.json", result, commit=False)
    rundir.write("report.html", render_html(result, figures).encode("utf-8"), commit=False)
    rundir.manifest.write(folder)
    if log:
        log(f"wrote {rundir.target / 'report.html'}")
    return result


def render_html(result: dict[str, Any], figures: list[dict[str, Any]]) -> str:
    env = Environment(
        loader=PackageLoader("aelab", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    template = env.get_template("report.html.j2")
    verdicts = [verdict(n, m) for n, m in result["models"].items()]
    return template.render(result=result, figures=figures, verdicts=verdicts)
