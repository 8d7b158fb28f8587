"""Every model of a workshop measured on the held-out images, beside PCA fitted on the training
images with as many components as the model's code has: PCA is the optimal linear code, so an
autoencoder earns its keep only by beating it.

:func:`measure` gives the numbers ``metrics.json`` records (and ``aelab evaluate`` prints) and the
arrays the report's figures draw; nothing here draws or writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from aelab._version import __version__
from aelab.analysis import anomaly, metrics, robustness
from aelab.analysis.detector import Detector
from aelab.data.prepare import Split
from aelab.runs.run import Run
from aelab.training.noise import parse_noise

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


def measure(
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
                Detector(run), methods[f"pca-{n_components}"], normals, x_te, x_hat
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


def _detection(detector, pca_reconstruct, normals, x_te, x_hat, fpr=anomaly.DEFAULT_FPR):
    """The model's (its :class:`~aelab.analysis.detector.Detector`) and PCA's detection of
    held-out people among unseen images of training people (scores: negative reconstruction
    errors), and the model's errors for the figure."""
    calibration, normal = (torch.from_numpy(x) for x in normals)
    unusual = detector.scores(torch.from_numpy(x_te), torch.from_numpy(x_hat))
    normal_scores = detector.scores(normal)
    model = anomaly.detection(detector.scores(calibration), normal_scores, unusual, fpr)

    def pca_scores(x):
        return -anomaly.squared_errors(x, pca_reconstruct(x))

    pca = anomaly.detection(pca_scores(normals[0]), pca_scores(normals[1]), pca_scores(x_te), fpr)
    threshold = None if model["threshold"] is None else -model["threshold"]
    return {**model, "pca": pca}, (-normal_scores, -unusual, threshold)
