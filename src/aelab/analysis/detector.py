"""Anomaly detection with a trained run: the one detector the estimator, ``aelab score`` and the
report share.

A :class:`Detector` scores images by how well the run's model reconstructs them (or, for a
variational model, by their evidence lower bound), sets a conformal threshold on normal images the
model did not train on, and gives p-values and per-pixel error maps; calibrated on normal images
with ``pixels=True``, it also gives each pixel of a map its own conformal p-value against the
errors of the same pixel on those images (:func:`aelab.analysis.anomaly.pixel_p_values`). The
statistics are the pure functions of :mod:`aelab.analysis.anomaly`; the model is asked only for
reconstructions (:meth:`aelab.runs.Run.map`, batched once for everyone).

Images are the model's own ``(N, C, H, W)`` in the model's pixel range. ``units`` states how
errors are counted: a scale per value (broadcastable to ``(C, H, W)``) by which a difference in
the model's range becomes one in the data's own units (the estimator's min-max scaling), so that
scores and maps read in the units of the data the user gave.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from aelab.analysis import anomaly
from aelab.models.likelihood import elbo
from aelab.runs.run import Run, reconstructed

SCORES = ("reconstruction", "elbo")
ELBO_SAMPLES = 16  # draws of the code per sample for the ELBO's expected log-likelihood


def check_score(score: Any, variational: bool, model: str = "the model") -> str:
    """``score`` if it is one of :data:`SCORES` and the model can give it."""
    if score not in SCORES:
        raise ValueError(
            f"anomaly_score={score!r} is not valid; allowed: " + ", ".join(repr(k) for k in SCORES)
        )
    if score == "elbo" and not variational:
        raise ValueError(
            f"anomaly_score='elbo' is not valid for model={model!r}: it has no posterior; use a "
            "variational model or anomaly_score='reconstruction'"
        )
    return score


def fewest_calibration(fpr: float) -> int:
    """The fewest calibration scores that set a threshold at the false-positive rate ``fpr``.

    With ``n`` of them the smallest conformal p-value is ``1 / (n + 1)``: for a lower rate no
    score can be flagged, and :func:`~aelab.analysis.anomaly.threshold_at` gives ``-inf``.
    """
    n = max(math.ceil(1.0 / fpr) - 1, 1)
    # threshold_at's own rule (floor(fpr * (n + 1)) >= 1), whatever 1 / fpr rounded to
    while math.floor(fpr * (n + 1)) < 1:
        n += 1
    while n > 1 and math.floor(fpr * n) >= 1:
        n -= 1
    return n


def too_few_to_calibrate(
    n: int,
    fpr: float,
    *,
    what: str = "calibration scores",
    unit: str = "images",
    fix: str = "calibrate on",
    rate: str = "fpr",
) -> str | None:
    """Why ``n`` calibration scores set no threshold at ``fpr``, and what to do; None when they
    set one. The one message of the detector, ``aelab score`` and the estimator: ``what`` names
    the scores, ``unit`` what they score, ``fix`` how to give more, ``rate`` the rate's name.
    """
    need = fewest_calibration(fpr)
    if n >= need:
        return None
    least = 1.0 / (n + 1)  # the smallest rate n scores can serve, shown rounded up
    shown = float(f"{least:.3g}")
    while math.floor(shown * (n + 1)) < 1:
        least *= 1.001
        shown = float(f"{least:.3g}")
    return (
        f"{n} {what} are too few for {rate}={fpr:g}: that rate needs at least {need} (with "
        f"fewer, the threshold is -inf and nothing is ever flagged); {fix} at least {need} normal "
        f"{unit} the model did not train on, or raise {rate} to {shown:g} or more"
    )


class Detector:
    """Scores, a threshold, p-values and error maps of a trained run.

    Parameters
    ----------
    run : Run
        The trained model.
    score : {"reconstruction", "elbo"}, default="reconstruction"
        ``"reconstruction"``: the negative mean squared reconstruction error per value (higher is
        more normal); ``"elbo"`` (variational models): the evidence lower bound in nats, from the
        closed-form KL and :data:`ELBO_SAMPLES` seeded draws of the code.
    units : array-like, optional
        Per-value scale of differences (broadcastable to ``(C, H, W)``); None: the model's own.
    calibration : array-like, optional
        Scores of normal images the model did not train on (see :meth:`calibrate`).
    """

    def __init__(
        self,
        run: Run,
        *,
        score: str = "reconstruction",
        units: np.ndarray | None = None,
        calibration: np.ndarray | None = None,
    ) -> None:
        self.run = run
        self.score = check_score(score, run.model.variational, run.name)
        self.units = None if units is None else np.asarray(units, dtype=np.float64)
        self.calibration = None if calibration is None else anomaly.calibrate(calibration)
        self.pixel_calibration: np.ndarray | None = None  # (n, H, W) sorted per pixel

    # -- per image --------------------------------------------------------------------------

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions ``(N, C, H, W)`` in ``x``'s dtype (float64 input: a float64 model)."""
        return self.run.map(reconstructed, x)

    def errors(self, x: torch.Tensor, x_hat: torch.Tensor | None = None) -> np.ndarray:
        """Squared error of every value ``(N, C, H, W)``, float64, in :attr:`units`."""
        x_hat = self.reconstruct(x) if x_hat is None else x_hat
        d = x.double().numpy() - x_hat.double().numpy()
        if self.units is not None:
            d = d * self.units
        return d * d

    def scores(self, x: torch.Tensor, x_hat: torch.Tensor | None = None) -> np.ndarray:
        """How normal each image is (higher = more normal), float64 ``(N,)``; ``x_hat``: its
        reconstructions, when at hand (reconstruction scores only)."""
        if self.score == "elbo":
            device = next(self.run.model.parameters()).device
            g = torch.Generator(device).manual_seed(0)  # the same images, the same scores

            def fn(model, xb):
                return elbo(model, xb, ELBO_SAMPLES, generator=g)

            return self.run.map(fn, x).numpy().astype(np.float64)
        errors = self.errors(x, x_hat)
        return -errors.reshape(len(errors), -1).mean(axis=1)

    def maps(self, x: torch.Tensor, x_hat: torch.Tensor | None = None) -> np.ndarray:
        """Each image's squared error per pixel ``(N, H, W)``: the mean over its channels."""
        return self.errors(x, x_hat).mean(axis=1)

    # -- the threshold ----------------------------------------------------------------------

    def calibrate(self, x: torch.Tensor, *, pixels: bool = False) -> Detector:
        """Set the calibration from ``x``: normal images the model did not train on; with
        ``pixels``, also each pixel's calibration errors (for :meth:`pixel_p_values`)."""
        x_hat = self.reconstruct(x) if pixels else None
        self.calibrate_scores(self.scores(x, x_hat))
        if pixels:
            self.pixel_calibration = anomaly.calibrate_pixels(self.maps(x, x_hat))
        return self

    def calibrate_scores(self, scores: np.ndarray) -> Detector:
        """Set the calibration from the scores of normal images."""
        self.calibration = anomaly.calibrate(scores)
        return self

    def _calibration(self) -> np.ndarray:
        if self.calibration is None:
            raise ValueError(
                "this detector has no threshold yet: calibrate it with normal images the model "
                "did not train on"
            )
        return self.calibration

    def threshold(self, fpr: float = anomaly.DEFAULT_FPR) -> float:
        """Scores below this are outliers, at the false-positive rate ``fpr``.

        Raises a ValueError when the calibration holds too few images for that rate (fewer than
        :func:`fewest_calibration`): the threshold would be ``-inf``, and no image flagged.
        """
        calibration, fpr = self._calibration(), anomaly.check_rate(fpr, "fpr")
        problem = too_few_to_calibrate(len(calibration), fpr)
        if problem is not None:
            raise ValueError(problem)
        return anomaly.threshold_at(calibration, fpr)

    def p_values(self, scores: np.ndarray) -> np.ndarray:
        """Conformal p-values of ``scores`` (small = unusual)."""
        return anomaly.p_values(self._calibration(), scores)

    # -- per pixel --------------------------------------------------------------------------

    def _pixel_calibration(self) -> np.ndarray:
        if self.pixel_calibration is None:
            raise ValueError(
                "this detector has no per-pixel calibration: calibrate(x, pixels=True) with "
                "normal images the model did not train on"
            )
        return self.pixel_calibration

    def pixel_level(self, fpr: float = anomaly.DEFAULT_FPR, map_correction: str = "none") -> float:
        """The level each pixel's p-value is compared with (see
        :func:`~aelab.analysis.anomaly.pixel_level`). Raises a ValueError when the per-pixel
        calibration holds too few images to reach it (no pixel could ever be flagged)."""
        calibration = self._pixel_calibration()
        n, h, w = calibration.shape
        level = anomaly.pixel_level(fpr, h * w, map_correction)
        if map_correction == "none":
            problem = too_few_to_calibrate(n, level)
        elif n < fewest_calibration(level):
            problem = (
                f"{n} calibration images are too few for map_correction='bonferroni' over {h * w} "
                f"pixels at fpr={fpr:g}: each pixel's level {level:.3g} needs at least "
                f"{fewest_calibration(level)} (the smallest p-value is 1 / (n + 1)); use "
                "map_correction='none' (at most a share fpr of a normal image's pixels flagged)"
            )
        else:
            problem = None
        if problem is not None:
            raise ValueError(problem)
        return level

    def pixel_p_values(self, maps: np.ndarray) -> np.ndarray:
        """Each pixel's conformal p-value ``(N, H, W)`` against the same pixel's calibration
        errors; ``maps`` from :meth:`maps`."""
        return anomaly.pixel_p_values(self._pixel_calibration(), maps)


__all__ = [
    "ELBO_SAMPLES",
    "SCORES",
    "Detector",
    "check_score",
    "fewest_calibration",
    "too_few_to_calibrate",
]
