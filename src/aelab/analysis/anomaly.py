"""Anomaly scores and their threshold, as pure functions of reconstruction errors.

An image an autoencoder reconstructs badly is unlike what it was trained on. The *score* of a
sample is its negative mean squared reconstruction error (higher = more normal, scikit-learn's
convention for ``score_samples``). A threshold turns scores into decisions; it is set from the
scores of *normal data the model did not train on* (a calibration set) so that a chosen share
of normal samples, the false-positive rate, falls below it:

* :func:`calibrate` sorts the calibration scores;
* :func:`threshold_at` picks the threshold for a target rate ``fpr``: with n calibration scores,
  a new normal sample falls below it with probability at most ``fpr`` (a conformal guarantee,
  exact when scores are exchangeable; the realised rate is within ``1/(n+1)`` of the target);
* :func:`p_values` gives the conformal p-value of each score, ``(1 + #{calibration <= s}) /
  (n + 1)``: the share of normal data at least as unusual. ``p <= fpr`` exactly when the score is
  below :func:`threshold_at`'s threshold.

The same test, pixel by pixel, gives calibrated error maps for aligned images (faces, digits, a
fixed camera): :func:`calibrate_pixels` keeps, for every pixel, the calibration normals' errors
there, and :func:`pixel_p_values` gives each pixel of a new image the conformal p-value of its
error against that pixel's own calibration errors. On a new normal image exchangeable with the
calibration normals, each pixel is then flagged (``p <= level``) with probability at most
``level``: the expected share of a normal image's pixels flagged is at most ``level``
(:func:`pixel_level`: the image's ``fpr`` itself, ``map_correction="none"``), or, with the
Bonferroni correction for the ``m`` pixels (``level = fpr / m``), the probability that *any*
pixel of a normal image is flagged is at most ``fpr``. Neither says that a flagged pixel is
defective, nor holds for images that are not aligned as the calibration images were.
:func:`significance_scale` is the one fixed colour scale of ``-log10 p`` whose middle is the
threshold, the same for every image.

Nothing here knows a model: :class:`aelab.Autoencoder` and ``aelab score`` compute the errors.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_FPR = 0.05  # the false-positive rate a threshold is set for unless told otherwise

PIXEL_CORRECTIONS = ("none", "bonferroni")  # for the number of pixels of a calibrated map

__all__ = [
    "DEFAULT_FPR",
    "PIXEL_CORRECTIONS",
    "calibrate",
    "calibrate_pixels",
    "check_rate",
    "detection",
    "extremes",
    "p_values",
    "pixel_level",
    "pixel_p_values",
    "significance",
    "significance_scale",
    "squared_errors",
    "threshold_at",
]


def check_rate(value: float, name: str, high: float = 1.0) -> float:
    """``value`` as a float strictly between 0 and ``high`` (``fpr``, ``contamination``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise ValueError(f"{name}={value!r} is not valid; expected a number in (0, {high:g})")
    v = float(value)
    if not (0.0 < v < high) and not (v == high == 0.5):
        raise ValueError(f"{name}={value!r} is not valid; expected a number in (0, {high:g})")
    return v


def squared_errors(x: np.ndarray, x_hat: np.ndarray) -> np.ndarray:
    """Mean squared error of each sample (the first axis), in float64."""
    d = np.asarray(x, dtype=np.float64) - np.asarray(x_hat, dtype=np.float64)
    return (d * d).reshape(len(d), -1).mean(axis=1)


def calibrate(scores: np.ndarray) -> np.ndarray:
    """The calibration scores, finite and sorted (what the other functions take)."""
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if not len(s):
        raise ValueError("no calibration scores: the threshold needs at least one normal sample")
    if not np.isfinite(s).all():
        raise ValueError("calibration scores hold NaN or infinity; the model diverged?")
    return s


def threshold_at(calibration: np.ndarray, fpr: float) -> float:
    """The score below which a sample is an outlier, for a false-positive rate ``fpr``.

    With ``m = floor(fpr * (n + 1)) - 1`` the threshold is the ``(m + 1)``-th smallest
    calibration score: a score below it has fewer than ``m + 1`` calibration scores at or below
    it, i.e. a p-value at most ``fpr``. ``-inf`` (nothing is an outlier) when ``n`` is too small
    for the rate (``fpr * (n + 1) < 1``).
    """
    n = len(calibration)
    m = math.floor(fpr * (n + 1)) - 1
    if m < 0:
        return -math.inf
    return math.inf if m >= n else float(calibration[m])


def p_values(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Conformal p-values of ``scores`` against the sorted ``calibration`` scores."""
    below = np.searchsorted(calibration, np.asarray(scores, dtype=np.float64), side="right")
    return (1.0 + below) / (len(calibration) + 1.0)


def detection(
    calibration: np.ndarray, normal: np.ndarray, unusual: np.ndarray, fpr: float = DEFAULT_FPR
) -> dict[str, float | int]:
    """How well scores tell ``unusual`` samples from ``normal`` ones, all never trained on.

    The threshold comes from ``calibration`` (normal samples apart from ``normal``) at the
    target ``fpr``; ``normal`` then measures the false-positive rate it achieves and
    ``unusual`` the share it detects. The ROC-AUC (unusual samples the positives, lower scores
    more unusual) is over ``normal`` and ``unusual``; it needs no threshold.
    """
    from sklearn.metrics import roc_auc_score

    normal = np.asarray(normal, dtype=np.float64)
    unusual = np.asarray(unusual, dtype=np.float64)
    if not len(normal) or not len(unusual):
        raise ValueError("detection needs at least one normal and one unusual score")
    threshold = threshold_at(calibrate(calibration), check_rate(fpr, "fpr"))
    labels = np.r_[np.zeros(len(normal)), np.ones(len(unusual))]
    return {
        "auc": float(roc_auc_score(labels, -np.r_[normal, unusual])),
        "target_fpr": float(fpr),
        "fpr": float(np.mean(normal < threshold)),
        "detected": float(np.mean(unusual < threshold)),
        "threshold": threshold if math.isfinite(threshold) else None,
        "n_calibration": len(calibration),
        "n_normal": len(normal),
        "n_unusual": len(unusual),
    }


# -- per pixel ---------------------------------------------------------------------------------


def calibrate_pixels(maps: np.ndarray) -> np.ndarray:
    """The per-pixel errors ``(n, H, W)`` of ``n`` calibration normals, each pixel's sorted
    (axis 0), float64: what :func:`pixel_p_values` takes."""
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim != 3:
        raise ValueError(f"maps have shape {m.shape}; expected (n, H, W) per-pixel errors")
    if not len(m):
        raise ValueError("no calibration maps: per-pixel p-values need at least one normal image")
    if not np.isfinite(m).all():
        raise ValueError("calibration maps hold NaN or infinity; the model diverged?")
    return np.sort(m, axis=0)


def pixel_level(fpr: float, n_pixels: int, map_correction: str = "none") -> float:
    """The level each pixel's p-value is compared with: ``fpr`` (``"none"``: at most a share
    ``fpr`` of a normal image's pixels flagged, on average) or ``fpr / n_pixels``
    (``"bonferroni"``: a normal image has any pixel flagged with probability at most ``fpr``)."""
    if map_correction not in PIXEL_CORRECTIONS:
        raise ValueError(
            f"map_correction={map_correction!r} is not valid; allowed: "
            + ", ".join(repr(c) for c in PIXEL_CORRECTIONS)
        )
    fpr = check_rate(fpr, "fpr")
    return fpr if map_correction == "none" else fpr / n_pixels


def pixel_p_values(calibration: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Conformal p-values ``(N, H, W)`` of per-pixel errors ``maps`` ``(N, H, W)``, each pixel
    against its own calibration errors (``calibration``, :func:`calibrate_pixels`'s):
    ``(1 + #{calibration errors at the pixel >= the error}) / (n + 1)``, small = unusual (the
    image-level :func:`p_values` in errors rather than scores)."""
    n, h, w = calibration.shape
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != (h, w):
        raise ValueError(f"maps have shape {m.shape}; the calibration's pixels are (N, {h}, {w})")
    cal = calibration.reshape(n, -1).T  # (H*W, n), each row sorted
    new = m.reshape(len(m), -1).T  # (H*W, N)
    at_least = np.empty(new.shape, dtype=np.int64)
    for j in range(len(cal)):  # one sorted search per pixel: O(H*W * N log n)
        at_least[j] = n - np.searchsorted(cal[j], new[j], side="left")
    return ((1.0 + at_least) / (n + 1.0)).T.reshape(m.shape)


def significance(p: np.ndarray) -> np.ndarray:
    """``-log10 p``: 0 for ``p = 1``, larger for smaller p-values (what a calibrated map draws)."""
    return -np.log10(np.asarray(p, dtype=np.float64))


def significance_scale(level: float) -> tuple[float, float, float]:
    """The fixed colour scale of :func:`significance`: ``(0, middle, 2 * middle)`` with
    ``middle = -log10(level)``, the threshold: a pixel at or above the middle is flagged. The
    same for every image scored at this level, whatever else is in the batch."""
    middle = -math.log10(level)
    return 0.0, middle, 2.0 * middle


def extremes(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The indices of the ``n`` most normal (highest scores, most normal first) and the ``n``
    most unusual (lowest scores, most unusual first); ties in index order. With fewer than
    ``2 n`` scores the two share indices."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((np.arange(len(s)), s))  # ascending score, then index
    high = np.lexsort((np.arange(len(s)), -s))
    return high[:n], order[:n]
