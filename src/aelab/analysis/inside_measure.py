"""The report's look inside each model, on the held-out images: its units (a page each, most
useful first, :mod:`aelab.analysis.units`), whether they come back across seeds, what its
reconstructions keep, what its codes find and a morph along an attribute direction
(:mod:`aelab.analysis.keeps`), each beside PCA at the same code size.

Called by :func:`aelab.analysis.measure.measure`: :func:`context` once per report,
:func:`measure_run` per run (its numbers aggregate over seeds with the rest), :func:`stability`
per model of several seeds. To stay cheap, everything here looks at up to :data:`LIMIT`
held-out images (an image and its mirror together), and PCA's stability at up to
:data:`PCA_LIMIT` training images and :data:`RESAMPLES` bootstrap resamples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aelab.analysis import keeps, units

LIMIT = 500  # held-out images the look inside uses, at most
PCA_LIMIT = 2000  # training images PCA's stability resamples, at most
RESAMPLES = 5  # bootstrap resamples of PCA's stability
TOP_UNITS = 32  # units whose numbers metrics.json records, most useful first
K = 5  # precision@K, and the neighbours drawn
MORPH_STEPS = 7
SHOWN_GROUPS = 4  # groups whose morph the report draws, in the order the groups come
RECORDED_GROUPS = 32  # groups whose direction metrics.json records
GROUP_REACH, GROUP_STEPS = 2.0, 5  # the morph along a group's direction: t from -2 to +2
MIN_GROUP = 2  # images a group needs in a part for the part to hold it


def sample(n: int, mirror: bool, limit: int = LIMIT, seed: int = 0) -> np.ndarray:
    """Sorted indices of up to ``limit`` of ``n`` images (seeded); with mirrors (the second
    half of the images mirrors the first), an image and its mirror are taken together."""
    half = n // 2 if mirror else n
    keep = limit // 2 if mirror else limit
    idx = np.arange(half)
    if half > keep:
        idx = np.sort(np.random.default_rng(seed).choice(half, size=keep, replace=False))
    return np.concatenate([idx, idx + half]) if mirror else idx


def probe_split(labels: np.ndarray, mirror: bool, seed: int = 0):
    """Where whole people are held out: the held-out sample's images a probe is fitted on and
    those it is scored on (:func:`keeps.halves_of_each_label`; an image and its mirror in the
    same half)."""
    if not mirror:
        return keeps.halves_of_each_label(labels, seed)
    half = len(labels) // 2
    first, second = keeps.halves_of_each_label(labels[:half], seed)
    return np.concatenate([first, first + half]), np.concatenate([second, second + half])


def attribute_groups(split, groups=None) -> dict[str, Any] | None:
    """The groups attribute directions are taken over: ``groups`` (an
    :class:`aelab.data.groups.ImageGroups`, the user's) or else the data's labels; on the
    held-out images where they hold two groups of :data:`MIN_GROUP` images or more, else on the
    training images; None where neither does. Returns the source, the part, each of its images'
    group (-1: none), the groups' names and those that count, in order."""
    if groups is not None:
        source, names = groups.source, list(groups.names)
        parts = {"heldout": groups.labels(split.heldout), "train": groups.labels(split.train)}
    else:
        if split.heldout.labels is None or split.train.labels is None:
            return None
        parts = {p: np.asarray(getattr(split, p).labels) for p in ("heldout", "train")}
        n = int(max(parts["heldout"].max(initial=-1), parts["train"].max(initial=-1))) + 1
        names = getattr(split.train, "class_names", None) or [str(i) for i in range(n)]
        source = "labels"
    for part, labels in parts.items():
        counts = np.bincount(labels[labels >= 0], minlength=len(names))
        kept = np.flatnonzero(counts >= MIN_GROUP)
        if len(kept) >= 2:
            return {"source": source, "part": part, "labels": labels, "names": names,
                    "groups": kept}  # fmt: skip
    return {"source": source, "part": None} if groups is not None else None


def context(
    split, *, mirror: bool, by_people: bool, seed: int = 0, image_groups=None
) -> dict[str, Any]:
    """What every run's look inside shares: the held-out sample, its labels and mirror groups,
    the probe's images and labels, the numbers of the pixels themselves, and the groups of the
    attribute directions (:func:`attribute_groups`; ``image_groups``: the user's)."""
    x_te = split.heldout.images
    idx = sample(len(x_te), mirror, seed=seed)
    x = x_te[idx]
    labels = None if split.heldout.labels is None else np.asarray(split.heldout.labels)[idx]
    groups = np.tile(np.arange(len(idx) // 2), 2) if mirror else None
    ctx: dict[str, Any] = {
        "idx": idx, "x": x, "labels": labels, "groups": groups, "mirror": mirror,
        "mean_image": split.train.images.mean(axis=0), "seed": seed, "pca_stability": {},
        "attribute": attribute_groups(split, image_groups),
    }  # fmt: skip
    if labels is not None and len(np.unique(labels)) > 1:
        if by_people:  # their labels never occur in training: fit and score within them
            fit, test = probe_split(labels, mirror, seed)
            ctx["probe"] = {"fit": (x[fit], labels[fit]), "test": test}
        else:
            tr = sample(len(split.train.images), False, seed=seed)
            ctx["probe"] = {
                "fit": (split.train.images[tr], np.asarray(split.train.labels)[tr]),
                "test": np.arange(len(idx)),
            }
        ctx["pixels_precision"] = keeps.precision_at_k(x, labels, K, groups)
    return ctx


def preservation(ctx: dict[str, Any], reconstructions: dict[str, np.ndarray]) -> dict[str, Any]:
    """:func:`keeps.preservation` of ``reconstructions`` (each of the whole held-out sample),
    the probe fitted and scored as :func:`context` set up."""
    x_fit, y_fit = ctx["probe"]["fit"]
    test = ctx["probe"]["test"]
    recon = {name: x_hat[test] for name, x_hat in reconstructions.items()}
    if "probes" not in ctx["probe"]:  # the same images for every run: fitted once
        ctx["probe"]["probes"] = keeps.fit_probes(x_fit, y_fit)
    return keeps.preservation(
        x_fit, y_fit, ctx["x"][test], ctx["labels"][test], recon, ctx["mean_image"],
        probes=ctx["probe"]["probes"],
    )  # fmt: skip


def measure_run(run, ctx: dict[str, Any], codes_tr, codes_te, x_hat, pca) -> tuple[dict, dict]:
    """One run's look inside: its numbers (``metrics.json``'s ``"inside"``) and the arrays of
    its figures. ``codes_te`` and ``x_hat``: of all the held-out images; ``pca``: its
    :func:`aelab.analysis.metrics.pca_baseline` at the run's code size."""
    idx, x, labels = ctx["idx"], ctx["x"], ctx["labels"]
    codes, recon, pca_recon = codes_te[idx], x_hat[idx], pca.x_test_hat[idx]
    entry: dict[str, Any] = {
        "n_images": len(idx),
        "fraction_unexplained": keeps.fraction_unexplained(x, recon),
        "pca_fraction_unexplained": keeps.fraction_unexplained(x, pca_recon),
    }
    arrays: dict[str, Any] = {}
    if "probe" in ctx:
        kept = preservation(ctx, {"model": recon, "pca": pca_recon})
        entry["probe"] = {p: {"original": v["original"], "mean_image": v["mean_image"]}
                          for p, v in kept.items()}  # fmt: skip
        entry["preservation"] = {p: v["reconstructed"]["model"] for p, v in kept.items()}
        entry["pca_preservation"] = {p: v["reconstructed"]["pca"] for p, v in kept.items()}
    if run.model.discrete_codes:  # a codebook's indices: no units to page, move or match
        entry["skipped"] = "codes index a codebook"
        return entry, arrays
    page = units.unit_pages(run.decode, codes_tr, codes, x)
    top = page["order"][:TOP_UNITS]
    entry["n_units"] = len(page["order"])
    entry["units"] = [
        {"unit": int(i), "usefulness": float(page["usefulness"][i]),
         "density": float(page["density"][i]), "dead": bool(page["dead"][i])}
        for i in top
    ]  # fmt: skip
    arrays["pages"] = page
    arrays["directions"] = page["directions"]
    attribute = ctx.get("attribute")
    if attribute is not None and attribute["part"] is not None:
        part_codes = codes_te if attribute["part"] == "heldout" else codes_tr
        entry["groups"], arrays["groups"] = along_groups(run.decode, attribute, part_codes, codes)
        entry["groups"]["start_image"] = int(idx[0])
    if labels is None or len(np.unique(labels)) < 2:
        return entry, arrays
    groups = ctx["groups"]
    entry["precision_at_5"] = {
        "codes": keeps.precision_at_k(codes, labels, K, groups),
        "pixels": ctx["pixels_precision"],
        "pca": keeps.precision_at_k(pca.codes_test[idx], labels, K, groups),
    }
    query = 0
    arrays["neighbours"] = {
        "query": query,
        "by_code": keeps.neighbours(codes, K, groups)[query],
        "by_pixels": keeps.neighbours(x, K, groups)[query],
    }
    arrays["morph"] = morph(run.decode, codes, labels)
    return entry, arrays


def morph(decode, codes: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """From the first image of the sample's first label to the second label, along the mean
    code of the second label minus that of the first: the codes and their decoded images."""
    start, to = np.unique(labels)[:2]
    along = keeps.direction(codes, labels, to, start)
    first = int(np.flatnonzero(labels == start)[0])
    path = keeps.morph(codes[first], along, steps=MORPH_STEPS)
    return {"start": start, "to": to, "codes": path,
            "images": decode(path.astype(np.float32))}  # fmt: skip


def along_groups(decode, attribute: dict[str, Any], part_codes, codes) -> tuple[dict, dict]:
    """Each group's attribute direction over ``part_codes`` (the codes of the part
    :func:`attribute_groups` chose), and the first held-out image of the sample (``codes[0]``)
    moved along the first :data:`SHOWN_GROUPS` of them, decoded: the record and the arrays."""
    which, names, labels = attribute["groups"], attribute["names"], attribute["labels"]
    directions = keeps.group_directions(part_codes, labels, which)  # (G, D)
    sizes = np.bincount(labels[labels >= 0], minlength=len(names))
    record = {
        "source": attribute["source"],
        "images": "held-out" if attribute["part"] == "heldout" else "training",
        "n_images": int(np.sum(labels >= 0)),
        "n_groups": len(which),
        "groups": [
            {"name": names[g], "n_images": int(sizes[g]), "norm": float(np.linalg.norm(d)),
             "direction": d.tolist()}
            for g, d in zip(which[:RECORDED_GROUPS], directions)
        ],
    }  # fmt: skip
    shown = min(SHOWN_GROUPS, len(which))
    paths = np.stack(
        [keeps.sweep(codes[0], d, GROUP_REACH, GROUP_STEPS) for d in directions[:shown]]
    )
    images = decode(paths.reshape(-1, paths.shape[-1]).astype(np.float32))
    arrays = {
        "names": [names[g] for g in which[:shown]],
        "t": np.linspace(-GROUP_REACH, GROUP_REACH, GROUP_STEPS),
        "images": np.asarray(images).reshape(*paths.shape[:2], *np.shape(images)[1:]),
    }
    return record, arrays


def stability(per_seed_directions: list[np.ndarray], x_train: np.ndarray, ctx) -> dict:
    """Each unit's matched similarity across seeds and each PCA component's across bootstrap
    resamples of (up to :data:`PCA_LIMIT`) training images, at the same code size."""
    model = units.stability(per_seed_directions)
    d = len(model)
    if d not in ctx["pca_stability"]:
        tr = sample(len(x_train), False, PCA_LIMIT, ctx["seed"])
        ctx["pca_stability"][d] = units.pca_stability(
            x_train[tr], d, resamples=RESAMPLES, seed=ctx["seed"]
        )
    pca = ctx["pca_stability"][d]
    return {"model": model, "pca": pca}


def across_seeds(entry: dict, a: dict, per_seed: list, x_train: np.ndarray, ctx) -> None:
    """A model's record (``entry``, its seeds aggregated) and first seed's arrays (``a``) get its
    units' stability across seeds (``per_seed``: each seed's :func:`measure_run` arrays), where
    it has two seeds or more with units."""
    dirs = [p.get("directions") for p in per_seed]
    if len(dirs) < 2 or any(d is None for d in dirs) or "inside" not in entry:
        return
    s = stability(dirs, x_train, ctx)
    entry["inside"]["stability"] = {
        "mean": float(s["model"].mean()),
        "pca_mean": float(s["pca"].mean()),
        "seeds": len(dirs),
    }
    a["inside"]["stability"] = s


__all__ = [
    "LIMIT",
    "TOP_UNITS",
    "K",
    "across_seeds",
    "along_groups",
    "attribute_groups",
    "context",
    "measure_run",
    "probe_split",
    "sample",
    "stability",
]
