"""Anomaly detection with a trained run: the one detector the estimator, ``aelab score`` and the
report share.

A :class:`Detector` scores images by how well the run's model reconstructs them (or, for a
variational model, by their evidence lower bound), sets a conformal threshold on normal images the
model did not train on, and gives p-values and per-pixel error maps. The statistics are the pure
functions of :mod:`aelab.analysis.anomaly`; the model is asked only for reconstructions
(:meth:`aelab.runs.Run.map`, batched once for everyone).

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

    def maps(self, x: torch.Tensor) -> np.ndarray:
        """Each image's squared error per pixel ``(N, H, W)``: the mean over its channels."""
        return self.errors(x).mean(axis=1)

    # -- the threshold ----------------------------------------------------------------------

    def calibrate(self, x: torch.Tensor) -> Detector:
        """Set the calibration from ``x``: normal images the model did not train on."""
        return self.calibrate_scores(self.scores(x))

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


__all__ = [
    "ELBO_SAMPLES",
    "SCORES",
    "Detector",
    "check_score",
    "fewest_calibration",
    "too_few_to_calibrate",
]
