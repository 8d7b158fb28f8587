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

from . import anomaly, metrics, plots, robustness
from ._version import __version__
from .noise import parse_noise
from .report_figures import report_figures
from .rundir import RunDir, check_name
from .runs import Run, Split, check_split, has_weights, load_run

EXACT_MSE = 1e-10  # PCA's held-out error below this: as many components as pixels, exact


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
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {}  # for the corruption curve
    normals = _normal_halves(split, spec.mirror, seed) if by_people else None
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
        methods[name] = run.reconstruct
        methods.setdefault(f"pca-{n_components}", _projection(pca.pca, x_te.shape[1:]))
        if normals is not None:
            entry["anomaly"], a["anomaly"] = _detection(
                run.reconstruct, methods[f"pca-{n_components}"], normals, x_te, x_hat
            )
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
    if normals is not None:
        data["normals"] = {"n_calibration": len(normals[0]), "n_test": len(normals[1])}
    curve = robustness.corruption_curve(methods, x_te, seed=seed)
    arrays["robustness"] = curve
    for name, entry in results.items():  # where a denoising model is not the best
        if "denoising" in entry:
            entry["denoising"]["shortfalls"] = robustness.shortfalls(curve, name, list(methods))
    out = {"aelab": __version__, "data": data, "models": results, "robustness": curve}
    return out, arrays


def _projection(pca: Any, shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """PCA's reconstruction of images, clipped to the pixel range as the baseline's is."""

    def project(x: np.ndarray) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        return np.clip(pca.inverse_transform(pca.transform(flat)), 0, 1).reshape(len(x), *shape)

    return project


def _normal_halves(split: Split, mirrored: bool, seed: int):
    """The split's unseen images of training people in two seeded halves: one sets the
    threshold, the other measures its false-positive rate (an image and its mirror together);
    None without them."""
    normals = split.normals
    if normals is None or not hasattr(normals, "images") or len(normals) < 2 * (1 + mirrored):
        return None
    n = len(normals) // 2 if mirrored else len(normals)
    order = np.random.default_rng(seed).permutation(n)
    halves = np.sort(order[: n // 2]), np.sort(order[n // 2 :])
    if mirrored:
        halves = tuple(np.concatenate([h, h + n]) for h in halves)
    return normals.images[halves[0]], normals.images[halves[1]]


def _detection(reconstruct, pca_reconstruct, normals, x_te, x_hat, fpr=anomaly.DEFAULT_FPR):
    """The model's and PCA's detection of held-out people among unseen images of training
    people (scores: negative reconstruction errors), and the model's errors for the figure."""
    calibration, normal = normals

    def scores(fn, x):
        return -anomaly.squared_errors(x, fn(x))

    model = anomaly.detection(
        scores(reconstruct, calibration), scores(reconstruct, normal),
        -anomaly.squared_errors(x_te, x_hat), fpr,
    )  # fmt: skip
    pca = anomaly.detection(
        scores(pca_reconstruct, calibration), scores(pca_reconstruct, normal),
        scores(pca_reconstruct, x_te), fpr,
    )  # fmt: skip
    threshold = None if model["threshold"] is None else -model["threshold"]
    errors = (-scores(reconstruct, normal), anomaly.squared_errors(x_te, x_hat), threshold)
    return {**model, "pca": pca}, errors


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
    figures = report_figures(runs, split, result["models"], arrays, seed)
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
