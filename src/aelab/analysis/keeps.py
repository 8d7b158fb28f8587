"""What a reconstruction keeps, what a code finds, and what its error numbers mean.

* **Preservation** (after SAELens's "CE-loss score" for language models): a simple probe, fitted
  on original images, scored on held-out originals, on their reconstructions and on the mean
  image; ``(acc_reconstructed - acc_mean) / (acc_original - acc_mean)`` is 1 where the
  reconstructions keep all the probe uses and 0 where they keep no more than the mean image.
  Where whole people are held out, their identities never occur in training, so the probe learns
  them on half of each held-out person's images and is scored on the other half.
* **Fraction of variance unexplained**: the held-out MSE over the pixels' variance.
* **Retrieval**: each held-out image's nearest held-out neighbours by code and by pixels, and
  precision@k against the labels (an image's own mirror left out).
* **Attribute directions**: the mean code of a labelled group minus the mean code of another (or
  of all), and the morph strip along it.
* **Where MSE misleads**: a one-pixel shift that scores worse than a blur or a mask, with SSIM
  beside it, so a reader learns what the numbers mean.

Functions of arrays only, as the rest of :mod:`aelab.analysis`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def fit_probes(x_fit, y_fit) -> dict[str, Any]:
    """The preservation probes fitted on ``x_fit`` (images) and ``y_fit`` (labels): logistic
    regression on pixels and 1-NN; fitted once, they score any number of reconstructions."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    fit = _flat(x_fit)
    return {
        "logistic": LogisticRegression(max_iter=2000, C=1.0).fit(fit, y_fit),
        "1nn": KNeighborsClassifier(n_neighbors=1).fit(fit, y_fit),
    }


def preservation(
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    reconstructions: dict[str, np.ndarray],
    mean_image: np.ndarray,
    probes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Each probe's accuracy on the originals ``x_test``, on the mean image and on each of
    ``reconstructions`` (by name, each shaped as ``x_test``), and each reconstruction's score
    ``(acc_recon - acc_mean) / (acc_orig - acc_mean)`` (None where the originals do no better
    than the mean image). ``probes``: those :func:`fit_probes` gave for ``x_fit, y_fit``, to
    fit them once for many calls."""
    probes = fit_probes(x_fit, y_fit) if probes is None else probes
    y_test = np.asarray(y_test)
    mean = np.repeat(np.asarray(mean_image, dtype=np.float64)[None], len(x_test), axis=0)
    out: dict[str, Any] = {}
    for name, probe in probes.items():
        original = float(np.mean(probe.predict(_flat(x_test)) == y_test))
        blank = float(np.mean(probe.predict(_flat(mean)) == y_test))
        scores = {}
        for method, x_hat in reconstructions.items():
            acc = float(np.mean(probe.predict(_flat(x_hat)) == y_test))
            gap = original - blank
            scores[method] = {
                "accuracy": acc,
                "score": None if gap <= 0 else (acc - blank) / gap,
            }
        out[name] = {"original": original, "mean_image": blank, "reconstructed": scores}
    return out


def halves_of_each_label(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices splitting every label's items in two halves (seeded): where whole people are held
    out, a probe learns their identities on one half and is scored on the other."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    first, second = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        cut = max(1, len(idx) // 2)
        first += idx[:cut].tolist()
        second += idx[cut:].tolist()
    return np.sort(first), np.sort(second)


def fraction_unexplained(x: np.ndarray, x_hat: np.ndarray) -> float:
    """The MSE over the pixels' variance: 0 a perfect reconstruction, 1 the mean image."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean((x - x_hat) ** 2) / (x.var() or 1.0))


def neighbours(vectors: np.ndarray, k: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Each row's ``k`` nearest other rows (Euclidean) ``(N, k)``; rows of the same ``group``
    (an image and its mirror) are left out."""
    from scipy.spatial.distance import cdist

    v = _flat(vectors)
    d = cdist(v, v, "sqeuclidean")  # (N, N): never the (N, N, P) of the differences
    np.fill_diagonal(d, np.inf)
    if groups is not None:
        groups = np.asarray(groups)
        d[groups[:, None] == groups[None, :]] = np.inf
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def precision_at_k(
    vectors: np.ndarray, labels: np.ndarray, k: int = 5, groups: np.ndarray | None = None
) -> float:
    """The share of each row's ``k`` nearest others that share its label, averaged."""
    labels = np.asarray(labels)
    near = neighbours(vectors, k, groups)
    return float(np.mean(labels[near] == labels[:, None]))


def direction(codes: np.ndarray, labels: np.ndarray, to: Any, start: Any = None) -> np.ndarray:
    """The mean code of label ``to`` minus the mean code of label ``start`` (of all codes when
    None): an attribute direction."""
    codes = np.asarray(codes, dtype=np.float64)
    labels = np.asarray(labels)
    if not np.any(labels == to) or (start is not None and not np.any(labels == start)):
        raise ValueError(f"labels {to!r} and {start!r} must each label at least one code")
    base = codes.mean(axis=0) if start is None else codes[labels == start].mean(axis=0)
    return codes[labels == to].mean(axis=0) - base


def group_directions(codes: np.ndarray, groups: np.ndarray, which: Any) -> np.ndarray:
    """The attribute direction of each group of ``which`` ``(len(which), D)``: the mean code of
    its images minus the mean code of every grouped image (``groups`` >= 0; -1: no group)."""
    codes, groups = np.asarray(codes, dtype=np.float64), np.asarray(groups)
    grouped = groups >= 0
    return np.stack([direction(codes[grouped], groups[grouped], g) for g in which])


def sweep(code: np.ndarray, along: np.ndarray, reach: float = 2.0, steps: int = 5) -> np.ndarray:
    """Codes ``(steps, D)`` from ``code - reach * along`` to ``code + reach * along``, evenly
    (``code`` itself in the middle when ``steps`` is odd)."""
    t = np.linspace(-reach, reach, steps)[:, None]
    return np.asarray(code, dtype=np.float64)[None] + t * np.asarray(along, dtype=np.float64)[None]


def morph(code: np.ndarray, along: np.ndarray, steps: int = 7, reach: float = 1.0) -> np.ndarray:
    """Codes ``(steps, D)`` from ``code`` to ``code + reach * along``, evenly."""
    t = np.linspace(0.0, reach, steps)[:, None]
    return np.asarray(code, dtype=np.float64)[None] + t * np.asarray(along)[None]


def misleading_mse(image: np.ndarray, seed: int = 0) -> list[dict[str, Any]]:
    """One image ``(C, H, W)`` changed four ways: shifted by a pixel, blurred, a patch masked,
    and noised; each with its MSE and SSIM against the original. A one-pixel shift, which a
    person hardly sees, usually has the largest error of the four."""
    from scipy import ndimage

    from aelab.analysis.metrics import mse, ssim

    x = np.asarray(image, dtype=np.float64)
    rng = np.random.default_rng(seed)
    masked = x.copy()
    _, h, w = x.shape
    masked[:, h // 3 : h // 3 + max(1, h // 6), w // 3 : w // 3 + max(1, w // 6)] = 0.0
    changed = {
        "shifted one pixel": np.roll(x, 1, axis=2),
        "blurred": np.stack([ndimage.gaussian_filter(c, 1.0) for c in x]),
        "a patch masked": masked,
        "noised": np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1),
    }
    out = []
    for what, y in changed.items():
        out.append({"change": what, "image": y.astype(np.float32),
                    "mse": mse(x[None], y[None]), "ssim": ssim(x[None], y[None])})  # fmt: skip
    return out


__all__ = [
    "direction",
    "fit_probes",
    "fraction_unexplained",
    "group_directions",
    "halves_of_each_label",
    "misleading_mse",
    "morph",
    "neighbours",
    "precision_at_k",
    "preservation",
    "sweep",
]
