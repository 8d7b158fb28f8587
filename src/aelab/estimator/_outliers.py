"""The outlier half of :class:`aelab.Autoencoder`, in scikit-learn's convention.

``score_samples`` is higher for more normal samples (the negative mean squared reconstruction
error, in ``X``'s units); ``decision_function`` is the score minus ``threshold_`` (negative: an
outlier); ``predict`` gives +1 for inliers and -1 for outliers; ``p_values`` the conformal
p-values against the calibration scores (:mod:`aelab.anomaly`). The threshold is set at fit
from a share (``calibration``) of ``X`` held out of training, at the false-positive rate
``fpr`` (or ``contamination``, PyOD's and scikit-learn's spelling); ``set_threshold`` sets it
again from any normal data. ``anomaly_score="elbo"`` scores a variational model's samples by
their evidence lower bound instead of their reconstruction error.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from .. import anomaly

ANOMALY_SCORES = ("reconstruction", "elbo")
ELBO_SAMPLES = 16  # draws of the code per sample for the ELBO's expected log-likelihood


class OutlierMethods:
    """Mixed into :class:`aelab.Autoencoder`; uses its ``_validate``, ``_map``, scaling."""

    def _rate(self) -> float:
        """The false-positive rate the threshold is set at: ``contamination`` if given."""
        if self.contamination is not None:
            return anomaly.check_rate(self.contamination, "contamination", 0.5)
        return anomaly.check_rate(self.fpr, "fpr")

    def _check_calibration(self) -> float:
        c = self.calibration
        if isinstance(c, bool) or not isinstance(c, (int, float, np.floating)) or not 0 <= c < 1:
            raise ValueError(
                f"calibration={c!r} is not valid; expected a share of X in [0, 1) (0: set the "
                "threshold on the training data itself, which understates false positives)"
            )
        self._rate()
        return float(c)

    def _calibration_split(self, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """Rows of X held out to set the threshold (None: calibrate on the training rows)."""
        share = self._check_calibration()
        k = round(share * n)
        if share == 0 or k < 1 or n - k < 1:
            return None
        return np.sort(rng.choice(n, k, replace=False))

    def _errors(self, X) -> tuple[np.ndarray, np.ndarray]:
        """``X`` checked, and its reconstructions."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        self._check_range(X)
        return X, self._reconstructed(X)

    def _reconstructed(self, X: np.ndarray) -> np.ndarray:
        """Reconstructions of an already checked ``X``, unscaled, in float64."""
        from ._estimator import _reconstruct

        return self._from_tensor(self._map(_reconstruct, self._to_tensor(X, X.dtype)), np.float64)

    def _check_anomaly_score(self, variational: bool) -> str:
        """``anomaly_score``, checked against the model (``variational``: it has a posterior)."""
        kind = self.anomaly_score
        if kind not in ANOMALY_SCORES:
            raise ValueError(
                f"anomaly_score={kind!r} is not valid; allowed: "
                + ", ".join(repr(k) for k in ANOMALY_SCORES)
            )
        if kind == "elbo" and not variational:
            raise ValueError(
                f"anomaly_score='elbo' is not valid for model={self.model!r}: it has no "
                "posterior; use a variational model or anomaly_score='reconstruction'"
            )
        return kind

    def _scores_of(self, X: np.ndarray) -> np.ndarray:
        """The scores of an already checked ``X``."""
        if self._check_anomaly_score(self.model_.variational) == "elbo":
            from ..models.likelihood import elbo

            device = next(self.model_.parameters()).device
            g = torch.Generator(device).manual_seed(0)  # the same X, the same scores

            def fn(model, xb):
                return elbo(model, xb, ELBO_SAMPLES, generator=g)

            return self._map(fn, self._to_tensor(X, X.dtype)).numpy().astype(np.float64)
        return -anomaly.squared_errors(X, self._reconstructed(X))

    def score_samples(self, X) -> np.ndarray:
        """How normal each sample is (higher = more normal). With
        ``anomaly_score="reconstruction"``: the negative mean squared reconstruction error per
        value, in ``X``'s units (0 = reconstructed exactly); with ``"elbo"`` (variational models):
        the evidence lower bound of the scaled sample in nats, from the closed-form KL and
        :data:`ELBO_SAMPLES` seeded draws of the code.

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        self._check_range(X)
        return self._scores_of(X)

    def error_map(self, X) -> np.ndarray:
        """Per-value squared reconstruction error, shaped like the samples (for images, a map
        of where each image differs from what the model expects).

        Returns
        -------
        errors : ndarray of shape (n_samples, *sample_shape_), float64
        """
        X, x_hat = self._errors(X)
        return (np.asarray(X, dtype=np.float64) - x_hat) ** 2

    def set_threshold(self, X) -> OutlierMethods:
        """Set ``threshold_`` from ``X``, normal samples the model did not train on, at the rate
        ``fpr`` (or ``contamination``). Returns the estimator."""
        self._calibration_scores = anomaly.calibrate(self.score_samples(X))
        return self

    def _set_calibration(self, scores: np.ndarray) -> None:
        self._calibration_scores = anomaly.calibrate(scores)

    def _calibrate_on(self, X: np.ndarray) -> None:
        """The threshold from rows of the ``X`` fit has checked already (its feature names
        are gone: checking again would warn)."""
        self._set_calibration(self._scores_of(X))

    @property
    def threshold_(self) -> float:
        """Scores below this are outliers (``-inf``: too few calibration samples for ``fpr``)."""
        return anomaly.threshold_at(self._calibration(), self._rate())

    @property
    def offset_(self) -> float:
        """``threshold_``, under the name scikit-learn's outlier detectors use."""
        return self.threshold_

    def _calibration(self) -> np.ndarray:
        check_is_fitted(self)
        scores = getattr(self, "_calibration_scores", None)
        if scores is None:
            raise ValueError(
                "this estimator has no threshold: it was loaded from a run of aelab train; call "
                "set_threshold(X) with normal samples it did not train on"
            )
        return scores

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - threshold_``: negative for outliers."""
        return self.score_samples(X) - self.threshold_

    def predict(self, X) -> np.ndarray:
        """+1 for inliers, -1 for outliers (``decision_function(X) < 0``)."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def p_values(self, X) -> np.ndarray:
        """Conformal p-values: the share of calibration samples at least as unusual (plus one,
        over n + 1). Small = unusual; ``p <= fpr`` exactly for predicted outliers."""
        return anomaly.p_values(self._calibration(), self.score_samples(X))
