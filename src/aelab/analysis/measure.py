"""Every model of a workshop measured on the held-out images, beside PCA fitted on the training
images with as many components as the model's code has: PCA is the optimal linear code, so an
autoencoder earns its keep only by beating it.

:func:`measure` gives the numbers ``metrics.json`` records (and ``aelab evaluate`` prints) and the
arrays the report's figures draw; nothing here draws or writes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from aelab._version import __version__
from aelab.analysis import anomaly, inside_measure, metrics
from aelab.analysis import robustness as corruption
from aelab.analysis.detector import Detector
from aelab.analysis.explain import excess_errors, explain, pixel_reference
from aelab.analysis.spread import aggregate
from aelab.data.datasets import DATASETS
from aelab.data.prepare import Split
from aelab.data.spec import DataSpec
from aelab.models.variational import kl_per_unit
from aelab.runs.run import Run
from aelab.training.noise import parse_noise

EXACT_MSE = 1e-10  # PCA's held-out error below this: as many components as pixels, exact
KINDS = {"person": "faces", "digit": "digits"}  # a data set's labels -> what its images are


def data_facts(spec: DataSpec, split: Split) -> dict[str, Any]:
    """What a run's images are and what was held out, for words on the page: ``"kind"``
    ("faces", "digits" or "images": a registered set's labels say; a folder or an array file
    is "images"), ``"heldout"`` ("people" for faces, "classes" otherwise, where whole labels
    are held out; "images" for a random share of images whose labels also occur in training)
    and, where whole labels are held out, ``"heldout_classes"``: their names; ``"labelled"``:
    whether the images have labels."""
    info = DATASETS.get(spec.source)
    words = info.labels.split() if info is not None else []
    kind = KINDS.get(words[0], "images") if words else "images"
    labels = getattr(split.heldout, "labels", None)
    facts: dict[str, Any] = {"kind": kind, "labelled": labels is not None}
    if "holdout_people" in spec.split_kwargs() and labels is not None:
        facts["heldout"] = "people" if kind == "faces" else "classes"
        names = getattr(split.heldout, "class_names", None)
        held = sorted({int(v) for v in labels})
        facts["heldout_classes"] = [names[v] if names and v < len(names) else str(v) for v in held]
    else:
        facts["heldout"] = "images"
    return facts


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
    runs: Mapping[str, Run | Mapping[int, Run]],
    split: Split,
    *,
    seed: int = 0,
    robustness: bool = True,
    partial: bool = False,
    memo: dict[Any, Any] | None = None,
    image_groups: Any = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics of every model on the held-out set, and the arrays the figures need.

    ``runs`` maps each model's name to its run, or to its runs by training seed
    (:attr:`aelab.runs.open.Opened.groups`). A model of several seeds gets every number the seeds
    disagree on as its mean, with the summary of its values (:func:`aelab.analysis.spread.summary`:
    standard deviation, 95% interval) under ``"spread"`` by the number's dotted path, and its
    ``"seeds"``; PCA's numbers, deterministic, are given once. Figures get the arrays of each
    model's first seed, and every seed's history. ``partial=True`` (the page written while a
    workshop trains) leaves out the corruption curve, the calibrated maps and the looks inside;
    ``memo``, kept by the caller between such pages and given to the last one too, holds each
    run's numbers so that a run is measured once (the last page adds only what partial ones
    leave out). ``robustness=False`` leaves out the
    corruption curve (the costliest part). ``image_groups`` (an
    :class:`aelab.data.groups.ImageGroups`, the user's) gives the attribute directions their
    groups instead of the data's labels.
    """
    groups = {n: r if isinstance(r, Mapping) else {r.config.train.seed: r} for n, r in runs.items()}
    x_tr, x_te = split.train.images, split.heldout.images
    if len(x_te) == 0:
        raise ValueError("the run has no held-out images; use a split with a held-out set")
    spec = next(iter(next(iter(groups.values())).values())).data_spec
    how = split.split_kwargs(spec)
    by_people = how.get("holdout_people") is not None
    knn_groups = None
    if spec.mirror:  # an image and its mirror are one sample: they must not vote for each other
        knn_groups = np.tile(np.arange(len(x_te) // 2), 2)
    ctx = {
        "split": split, "by_people": by_people, "groups": knn_groups, "seed": seed,
        # PCA at each code size: fitted once per split, so once for all of a workshop's pages
        "pcas": {} if memo is None else memo.setdefault("pcas", {}),
        "normals": _normal_halves(split, spec.mirror, seed) if by_people else None,
        "inside": None if partial else inside_measure.context(
            split, mirror=spec.mirror, by_people=by_people, seed=seed, image_groups=image_groups),
        "partial": partial,
    }  # fmt: skip
    robustness = robustness and not partial
    results: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {}  # for the corruption curve
    clean: dict[str, np.ndarray] = {}  # their reconstructions of the clean held-out images
    for name, seeds in groups.items():
        entries, insides = [], []
        for i, (s, run) in enumerate(seeds.items()):
            held = None if memo is None else memo.get((name, s))
            if held is None:
                entry, a, k = _measure_run(run, ctx)
                if memo is not None:
                    memo[(name, s)] = entry, a, k
            else:  # measured for a page written while the workshop trained
                entry, a, k = held
                if not partial and "inside" not in entry:  # only what those pages leave out
                    _measure_more(run, ctx, entry, a, k)
            entry = copy.deepcopy(entry)  # aggregate and the seeds' summaries write into it
            entries.append(entry)
            insides.append(a["inside"])
            if robustness:  # the corruption curve's methods
                methods[_seed_key(name, s, len(seeds))] = run.reconstruct
                clean[_seed_key(name, s, len(seeds))] = a["x_hat"]  # decode(encode(x_te))
                methods.setdefault(f"pca-{k}", _pca_of(ctx, split, k))
            if i == 0:
                arrays[name] = a
        results[name], spread = aggregate(entries)
        results[name]["seeds"] = list(seeds)
        results[name]["spread"] = spread
        if ctx["inside"] is not None:
            inside_measure.across_seeds(results[name], arrays[name], insides, x_tr, ctx["inside"])
        arrays[name]["histories"] = [run.history for run in seeds.values()]
    facts = data_facts(spec, split)
    data = {
        "name": spec.name,  # the folder's name, not its path
        **facts,
        "n_train": len(x_tr),
        "n_heldout": len(x_te),
        "image_shape": list(split.train.image_shape),
        "split": {
            **how,
            "mirror": spec.mirror,
            "seed": spec.seed,
            "knn": (
                f"1-NN leave-one-out among held-out images ({facts['heldout']} never trained on; "
                "mirrors excluded)"
                if by_people
                else "1-NN of held-out codes against training codes"
            ),
        },
    }
    attribute = None if ctx["inside"] is None else ctx["inside"]["attribute"]
    if attribute is not None:
        data["groups"] = {"source": attribute["source"], "images": attribute["part"]}
    normals = ctx["normals"]
    if normals is not None:
        data["normals"] = {"n_calibration": len(normals[0]), "n_test": len(normals[1])}
    curve = None
    if robustness:
        made = corruption.corruption_curve(methods, x_te, seed=seed, clean=clean)
        curve = _by_model(made, groups)
        arrays["robustness"] = curve
        for name, entry in results.items():  # where a denoising model is not the best
            if "denoising" in entry:
                rivals = list(curve["methods"])
                entry["denoising"]["shortfalls"] = corruption.shortfalls(curve, name, rivals)
    out = {"aelab": __version__, "data": data, "models": results, "robustness": curve}
    arrays["inside"] = ctx["inside"]
    return out, arrays


def _seed_key(name: str, seed: int, n: int) -> str:
    return name if n == 1 else f"{name}\0{seed}"


def _by_model(curve: dict[str, Any], groups: Mapping[str, Mapping[int, Run]]) -> dict[str, Any]:
    """The corruption curve with each model's seeds merged: the mean PSNR at each level, and
    (several seeds) its standard deviation and seed count under ``"spread"``."""
    merged: dict[str, Any] = {}
    spread: dict[str, Any] = {}
    for key, kinds in curve["methods"].items():
        name = key.split("\0")[0]
        seeds = groups.get(name, {})
        if name in merged:
            continue
        if len(seeds) < 2:  # PCA, or a model of one seed
            merged[name] = kinds
            continue
        per_seed = [curve["methods"][f"{name}\0{s}"] for s in seeds]
        merged[name] = {k: np.mean([p[k] for p in per_seed], axis=0).tolist() for k in kinds}
        std = {k: np.std([p[k] for p in per_seed], axis=0, ddof=1).tolist() for k in kinds}
        spread[name] = {"n": len(per_seed), "std": std}
    return {**curve, "methods": merged, **({"spread": spread} if spread else {})}


def _measure_run(run: Run, ctx: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """One run's numbers, its arrays for the figures, and its PCA's number of components."""
    split, seed = ctx["split"], ctx["seed"]
    x_tr, x_te = split.train.images, split.heldout.images
    code_size = run.model.latent_dim
    codes_tr, codes_te = run.encode(x_tr), run.encode(x_te)
    x_hat = run.decode(codes_te)
    # PCA with as many components as the code, capped by what the training set allows
    n_components = min(code_size, len(x_tr), int(np.prod(x_tr.shape[1:])))
    pca, project = ctx["pcas"][n_components] if n_components in ctx["pcas"] else (
        _pca_fit(ctx, split, n_components))  # fmt: skip
    dead = metrics.dead_units(codes_tr)
    history = run.history
    knn = ctx["by_people"], ctx["groups"]
    entry = {
        "code_size": code_size,
        "code_activation": getattr(getattr(run.model, "config", None), "latent_activation", None),
        "epochs": len(history),
        "train_seconds": float(sum(r["seconds"] for r in history)),
        "final_loss": history[-1]["loss"] if history else None,
        "dead_units": int(dead.sum()),
        "heldout": {
            **metrics.reconstruction_scores(x_te, x_hat),
            "knn_accuracy": _knn(codes_tr, codes_te, split, *knn),
            "variance_ratio": _variance_ratio(x_te, x_hat),
        },
        "pca": {
            "n_components": n_components,
            **metrics.reconstruction_scores(x_te, pca.x_test_hat),
            "knn_accuracy": _knn(pca.codes_train, pca.codes_test, split, *knn),
            "variance_ratio": _variance_ratio(x_te, pca.x_test_hat),
        },
    }
    curve = _heldout_curve(history)
    if curve is not None:
        entry["heldout_curve"] = curve
    # None where PCA is exact (as many components as pixels): no ratio means anything there
    pca_mse = entry["pca"]["mse"]
    entry["pca_ratio"] = entry["heldout"]["mse"] / pca_mse if pca_mse > EXACT_MSE else None
    a: dict[str, Any] = {"codes_tr": codes_tr, "codes_te": codes_te, "x_hat": x_hat, "dead": dead,
                         "inside": {}}  # fmt: skip
    if run.model.variational:  # the mean KL of each unit: what says whether it is in use
        kl = run.map(lambda model, b: kl_per_unit(*model.posterior(b)), x_te)  # (N, d)
        a["kl_units"] = kl.double().mean(0).numpy()
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
    if ctx["normals"] is not None:
        entry["anomaly"], a["anomaly"] = _detection(
            Detector(run), project, ctx["normals"], x_te, x_hat
        )
    extra = run.extra_metrics(x_te)  # the family's own (models.base.extra_metrics)
    if extra:
        entry["family"] = extra
    if not ctx["partial"]:
        _measure_more(run, ctx, entry, a, n_components)
    return entry, a, n_components


def _measure_more(run: Run, ctx: dict[str, Any], entry: dict, a: dict, k: int) -> None:
    """What a page written while a workshop trains leaves out, added to a run's ``entry`` and
    arrays ``a``: the looks inside (``entry["inside"]``, always set: what says a run was
    measured whole) and the calibrated anomaly maps."""
    x_te = ctx["split"].heldout.images
    pca, _ = _pca_fit(ctx, ctx["split"], k)
    entry["inside"], a["inside"] = inside_measure.measure_run(
        run, ctx["inside"], a["codes_tr"], a["codes_te"], a["x_hat"], pca)  # fmt: skip
    if ctx["normals"] is not None:
        maps = _calibrated_maps(Detector(run), ctx["normals"], x_te, a["x_hat"])
        if maps is not None:
            entry["anomaly"]["maps"], a["anomaly_maps"] = maps


def _pca_fit(ctx: dict[str, Any], split: Split, k: int):
    """PCA with ``k`` components on the training images: fitted once for every model and seed
    (deterministic), with its reconstruction function."""
    if k not in ctx["pcas"]:
        x_tr, x_te = split.train.images, split.heldout.images
        fit = metrics.pca_baseline(x_tr, x_te, n_components=k)
        ctx["pcas"][k] = (fit, _projection(fit.pca, x_te.shape[1:]))
    return ctx["pcas"][k]


def _pca_of(ctx: dict[str, Any], split: Split, k: int) -> Callable[[np.ndarray], np.ndarray]:
    return _pca_fit(ctx, split, k)[1]


def _variance_ratio(x: np.ndarray, x_hat: np.ndarray) -> float | None:
    return metrics.variance_ratio(x, x_hat) if len(x) > 1 else None


def _heldout_curve(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``{"best_epoch", "best", "last", "best_early"}`` of the held-out loss over training (None:
    none recorded): where it was lowest, where it ended, and its lowest over the first three
    quarters of the epochs (how much the last quarter still gained)."""
    points = [(r["epoch"], r["heldout_loss"]) for r in history if r.get("heldout_loss") is not None]
    if not points:
        return None
    best_epoch, best = min(points, key=lambda p: p[1])
    early = min(loss for _, loss in points[: max(1, (3 * len(points)) // 4)])
    return {"best_epoch": best_epoch, "best": best, "last": points[-1][1], "best_early": early}


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


GALLERY = 3  # the most normal and the most unusual images the report's maps show, each


def _calibrated_maps(detector, normals, x_te, x_hat, fpr=anomaly.DEFAULT_FPR):
    """Per-pixel calibration on the first half of the unseen normal images: the realised
    per-pixel false-positive rate on the second half beside its bound, and the arrays of the
    report's gallery (the most normal and most unusual of both halves' second and the held-out
    images, their calibrated maps and explanations); None when the calibration is too small."""
    calibration, normal = (torch.from_numpy(x) for x in normals)
    detector.calibrate(calibration, pixels=True)
    try:
        level = detector.pixel_level(fpr)
    except ValueError:  # too few calibration images for the rate: no map to draw
        return None
    x = torch.cat([normal, torch.from_numpy(x_te)])
    x_hat = torch.cat([detector.reconstruct(normal), torch.from_numpy(x_hat)])
    maps, scores = detector.maps(x, x_hat), detector.scores(x, x_hat)
    p = detector.pixel_p_values(maps)
    flagged = (p <= level).reshape(len(p), -1).mean(axis=1)  # share of each image's pixels
    n = len(detector.pixel_calibration)
    numbers = {
        "level": level, "map_correction": "none", "n_calibration": n,
        "pixel_fpr": float(flagged[: len(normal)].mean()),  # realised, unseen normal images
        "pixel_fpr_bound": float(np.floor(level * (n + 1)) / (n + 1)),  # its expectation
        "unusual_pixel_rate": float(flagged[len(normal) :].mean()),
    }  # fmt: skip
    most_normal, most_unusual = anomaly.extremes(scores, GALLERY)
    picked = np.concatenate([most_normal, most_unusual])
    reference = pixel_reference(detector.pixel_calibration)
    why = [explain(excess_errors(maps[i], reference)) for i in picked]
    arrays = {
        "images": x[picked].numpy(), "significance": anomaly.significance(p[picked]),
        "level": level, "n_normal": len(most_normal),
        "labels": [f"p={q:.2g}; {w.share:.0%} in {len(w.regions)} "
                   + ("box" if len(w.regions) == 1 else "boxes")
                   for q, w in zip(detector.p_values(scores[picked]), why)],
        "boxes": [[r.box for r in w.regions] for w in why],
    }  # fmt: skip
    return numbers, arrays
