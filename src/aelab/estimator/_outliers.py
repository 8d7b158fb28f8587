"""The outlier half of :class:`aelab.Autoencoder`, in scikit-learn's convention.

``score_samples`` is higher for more normal samples (the negative mean squared reconstruction
error, in ``X``'s units); ``decision_function`` is the score minus ``threshold_`` (negative: an
outlier); ``predict`` gives +1 for inliers and -1 for outliers; ``p_values`` the conformal
p-values against the calibration scores (:mod:`aelab.analysis.anomaly`). The threshold is set at
fit from a share (``calibration``) of ``X`` held out of training, at the false-positive rate
``fpr`` (or ``contamination``, PyOD's and scikit-learn's spelling); ``set_threshold`` sets it
again from any normal data. ``anomaly_score="elbo"`` scores a variational model's samples by
their evidence lower bound instead of their reconstruction error. The scoring itself is the
library's :class:`~aelab.analysis.detector.Detector`.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from aelab.analysis import anomaly
from aelab.analysis.detector import too_few_to_calibrate
from aelab.estimator._layout import from_batch
from aelab.estimator._params import rate


class OutlierMixin:
    """Outlier detection for an estimator that gives ``_scoring(X) -> (detector, batch)``: its
    run's :class:`~aelab.analysis.detector.Detector` and ``X`` checked, as the model's batch;
    the fitted ``calibration_scores_``, ``sample_shape_`` and ``data_format`` say the rest."""

    def score_samples(self, X) -> np.ndarray:
        """How normal each sample is (higher = more normal). With
        ``anomaly_score="reconstruction"``: the negative mean squared reconstruction error per
        value, in ``X``'s units (0 = reconstructed exactly); with ``"elbo"`` (variational models):
        the evidence lower bound of the scaled sample in nats, from the closed-form KL and
        seeded draws of the code (:class:`aelab.analysis.detector.Detector`).

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
        """
        detector, x = self._scoring(X)
        return detector.scores(x)

    def error_map(self, X) -> np.ndarray:
        """Per-value squared reconstruction error, shaped like the samples (for images, a map
        of where each image differs from what the model expects), in ``X``'s units.

        Returns
        -------
        errors : ndarray of shape (n_samples, *sample_shape_), float64
        """
        detector, x = self._scoring(X)
        errors = torch.from_numpy(detector.errors(x))
        return from_batch(errors, self.sample_shape_, self.data_format, None, np.float64)

    def set_threshold(self, X) -> OutlierMixin:
        """Set ``threshold_`` from ``X``, normal samples the model did not train on, at the rate
        ``fpr`` (or ``contamination``). Returns the estimator."""
        self.calibration_scores_ = anomaly.calibrate(self.score_samples(X))
        return self

    @property
    def threshold_(self) -> float:
        """Scores below this are outliers.

        ``-inf`` when there are too few calibration samples for the rate (fewer than
        :func:`~aelab.analysis.detector.fewest_calibration`): nothing is then an outlier, and a
        UserWarning says so, how many samples the rate needs and what to do.
        """
        calibration, fpr = self._calibration(), rate(self)
        problem = too_few_to_calibrate(
            len(calibration),
            fpr,
            what="calibration samples",
            unit="samples",
            fix="call set_threshold(X) with",
            rate="fpr" if self.contamination is None else "contamination",
        )
        if problem is not None:
            # kept -inf (scikit-learn's predict must answer), but never without a word: the
            # rate is one the samples cannot serve, and predict would flag nothing
            warnings.warn(f"threshold_ is -inf: {problem}", UserWarning, stacklevel=2)
        return anomaly.threshold_at(calibration, fpr)

    @property
    def offset_(self) -> float:
        """``threshold_``, under the name scikit-learn's outlier detectors use."""
        return self.threshold_

    def _calibration(self) -> np.ndarray:
        check_is_fitted(self)
        if self.calibration_scores_ is None:
            raise ValueError(
                "this estimator has no threshold: it was loaded from a run of aelab train; call "
                "set_threshold(X) with normal samples it did not train on"
            )
        return self.calibration_scores_

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
