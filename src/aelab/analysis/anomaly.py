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

Nothing here knows a model: :class:`aelab.Autoencoder` and ``aelab score`` compute the errors.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_FPR = 0.05  # the false-positive rate a threshold is set for unless told otherwise

__all__ = [
    "DEFAULT_FPR",
    "calibrate",
    "check_rate",
    "detection",
    "p_values",
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
