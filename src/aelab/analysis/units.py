"""A page per code unit, and whether units come back across seeds: the look inside that the
sparse-autoencoder dashboards (SAELens with sae_vis, Neuronpedia; Overcomplete for vision) give
each learned feature, for any image autoencoder.

For each unit ``i`` of a code ``z`` ``(N, D)``:

* its **decoder direction**: ``decode(m + t e_i) - decode(m)`` with ``m`` the mean training code
  and ``t`` twice the unit's standard deviation over the training codes (1 where it does not
  vary): what moving that unit alone paints, for linear and non-linear decoders alike;
* the held-out images that **activate it most and least**, and its **activation histogram**;
* its **density**: the share of held-out images where it is *active*, that is more than a tenth
  of its training standard deviation away from its training median (for a ReLU code, above
  zero); **dead** when it never varies over the training codes (:func:`metrics.dead_units`);
* its **usefulness**: the share of the held-out images' pixel variance that its loss costs, when
  the unit is set to zero in every code (``(MSE_without - MSE) / Var(x)``).

Units match across seeds by their decoder directions: the absolute cosine similarity of every
pair, and the one-to-one assignment that maximises it (Hungarian matching,
``scipy.optimize.linear_sum_assignment``), as Overcomplete compares two dictionaries. PCA's
components across bootstrap resamples of the training images are the baseline: how stable a
linear code of the same size is on the same data.

Everything here is a function of arrays and of ``decode`` (a callable): nothing draws or
writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from aelab.analysis.stacks import stacks

DIRECTION_STEPS = 2.0  # t in units of the unit's training standard deviation
ACTIVE_FRACTION = 0.1  # active: this many training standard deviations from the median
TOP_K = 8
STACK_BYTES = 64 * 2**20  # decoded images of ablated codes held at once, at most


def directions(
    decode: Callable[[np.ndarray], np.ndarray], codes_train: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's decoder direction ``(D, C, H, W)`` and the step ``t`` ``(D,)`` it was drawn
    at (see the module's docstring)."""
    codes_train = np.asarray(codes_train, dtype=np.float32)
    mean = codes_train.mean(axis=0)
    std = codes_train.std(axis=0)
    steps = np.where(std > 0, DIRECTION_STEPS * std, 1.0).astype(np.float32)
    moved = np.repeat(mean[None], len(mean), axis=0) + np.diag(steps)  # (D, D)
    base = decode(mean[None])  # (1, C, H, W)
    return decode(moved) - base, steps


def activity(codes_train: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Which of ``codes`` ``(N, D)`` have each unit active (``(N, D)`` bool), by the rule of the
    module's docstring."""
    codes_train = np.asarray(codes_train, dtype=np.float64)
    median = np.median(codes_train, axis=0)
    std = codes_train.std(axis=0)
    return np.abs(np.asarray(codes, dtype=np.float64) - median) > ACTIVE_FRACTION * std


def usefulness(
    decode: Callable[[np.ndarray], np.ndarray], codes: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """Each unit's share of the pixel variance of images ``x`` that setting it to zero in their
    codes ``(N, D)`` costs: ``(MSE_without_i - MSE) / Var(x)``, ``(D,)``."""
    codes = np.asarray(codes, dtype=np.float32)
    x = np.asarray(x, dtype=np.float64)
    variance = float(x.var()) or 1.0
    base = float(np.mean((decode(codes) - x) ** 2))
    n, d = codes.shape
    out = np.zeros(d)  # a unit already zero in every code (a dead ReLU unit) costs nothing
    moved = np.flatnonzero((codes != 0).any(axis=0))
    for part in stacks(len(moved), 4 * x[0].size * n, STACK_BYTES):  # units per decode call
        units = moved[part]
        ablated = np.repeat(codes[None], len(units), axis=0)  # (U, N, D): one unit zeroed each
        ablated[np.arange(len(units)), :, units] = 0.0
        x_hat = np.asarray(decode(ablated.reshape(-1, d))).reshape(len(units), *x.shape)
        mse = ((x_hat - x[None]) ** 2).reshape(len(units), -1).mean(axis=1)
        out[units] = (mse - base) / variance
    return out


def unit_pages(
    decode: Callable[[np.ndarray], np.ndarray],
    codes_train: np.ndarray,
    codes_heldout: np.ndarray,
    x_heldout: np.ndarray,
    k: int = TOP_K,
    bins: int = 20,
) -> dict[str, Any]:
    """Every unit's page, units sorted by usefulness (most useful first).

    Returns ``{"order", "directions", "steps", "top", "bottom", "histograms", "edges",
    "density", "dead", "usefulness"}``: ``order`` the units by usefulness; ``top``/``bottom``
    ``(D, k)`` indices of the held-out images that activate each unit most and least;
    ``histograms`` ``(D, bins)`` counts over ``edges`` ``(D, bins + 1)``.
    """
    from aelab.analysis.metrics import dead_units

    codes_heldout = np.asarray(codes_heldout, dtype=np.float32)
    k = min(k, len(codes_heldout))
    dirs, steps = directions(decode, codes_train)
    use = usefulness(decode, codes_heldout, x_heldout)
    ranked = np.argsort(codes_heldout, axis=0)  # (N, D) ascending
    hist, edges = [], []
    for i in range(codes_heldout.shape[1]):
        h, e = np.histogram(codes_heldout[:, i].astype(np.float64), bins=bins,
                            range=_span(codes_heldout[:, i]))  # fmt: skip
        hist.append(h)
        edges.append(e)
    return {
        "order": np.argsort(-use, kind="stable"),
        "directions": dirs,
        "steps": steps,
        "top": ranked[::-1][:k].T,
        "bottom": ranked[:k].T,
        "histograms": np.asarray(hist),
        "edges": np.asarray(edges),
        "density": activity(codes_train, codes_heldout).mean(axis=0),
        "dead": dead_units(codes_train),
        "usefulness": use,
    }


def match(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one matching of the rows of ``a`` ``(D, ...)`` to those of ``b`` that
    maximises their absolute cosine similarity: for each row of ``a``, its partner in ``b``
    and their similarity."""
    from scipy.optimize import linear_sum_assignment

    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if a.shape != b.shape:
        raise ValueError(f"units of shape {a.shape} and {b.shape} cannot be matched")
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    cos = np.abs((a / np.where(na > 0, na, 1)) @ (b / np.where(nb > 0, nb, 1)).T)
    rows, cols = linear_sum_assignment(-cos)
    partner = np.empty(len(a), dtype=np.int64)
    partner[rows] = cols
    return partner, cos[rows, cols][np.argsort(rows)]


def stability(per_seed: list[np.ndarray]) -> np.ndarray:
    """Each unit of the first seed's: its mean matched similarity to the other seeds' units
    (``(D,)``; needs two seeds or more)."""
    if len(per_seed) < 2:
        raise ValueError("stability needs the units of at least two seeds")
    return np.mean([match(per_seed[0], other)[1] for other in per_seed[1:]], axis=0)


def pca_stability(
    x_train: np.ndarray, n_components: int, resamples: int = 3, seed: int = 0
) -> np.ndarray:
    """PCA's components on the training images against those of bootstrap resamples of them:
    each component's mean matched similarity (``(n_components,)``), the baseline of
    :func:`stability`."""
    from sklearn.decomposition import PCA

    x = np.asarray(x_train, dtype=np.float64).reshape(len(x_train), -1)
    k = min(n_components, len(x), x.shape[1])
    full = PCA(n_components=k, random_state=0).fit(x).components_
    rng = np.random.default_rng(seed)
    boots = [
        PCA(n_components=k, random_state=0).fit(x[rng.integers(0, len(x), len(x))]).components_
        for _ in range(resamples)
    ]
    return stability([full, *boots])


__all__ = [
    "ACTIVE_FRACTION",
    "DIRECTION_STEPS",
    "activity",
    "directions",
    "match",
    "pca_stability",
    "stability",
    "unit_pages",
    "usefulness",
]


def _span(values: np.ndarray) -> tuple[float, float]:
    """The histogram range of one unit's values: their own, or one unit wide around them where
    they (nearly) never vary (a saturated sigmoid's float32 values differ by 1e-8, too little
    for ``bins`` finite-sized bins)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi - lo > 1e-6 * max(1.0, abs(lo), abs(hi)):
        return lo, hi
    middle = (lo + hi) / 2
    return middle - 0.5, middle + 0.5
