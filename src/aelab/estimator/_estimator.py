"""``Autoencoder``: a scikit-learn transformer that stands wherever ``PCA`` stands.

``fit`` trains one of aelab's recipes, resolved as every entry point resolves it
(:func:`aelab.training.recipes.resolve`), into a :class:`~aelab.Run` the estimator holds;
``transform`` gives the codes, ``inverse_transform`` the reconstructions. Tables and images are
both accepted; data outside the range the model's output layer can produce is min-max scaled at
fit and unscaled on the way out. A fitted estimator saves as a run directory of ``aelab train``
with an ``"estimator"`` section in ``config.json``; nothing is pickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from aelab.analysis import anomaly
from aelab.analysis.detector import Detector
from aelab.estimator import _layout as layout
from aelab.estimator._base import RunEstimator
from aelab.estimator._files import estimator_section, save
from aelab.estimator._fitting import train
from aelab.estimator._layout import as_int, checked, checked_codes, fit_scaling, validate
from aelab.estimator._outliers import OutlierMixin
from aelab.estimator._params import (
    PriorOnly,
    check_layout,
    check_params,
    model_overrides,
    train_settings,
)
from aelab.runs.config import RunConfig
from aelab.runs.run import Run, decoded, encoded, open_run, reconstructed
from aelab.training.recipes import resolve
from aelab.utils.device import resolve_device


class Autoencoder(OutlierMixin, RunEstimator):
    """An autoencoder with PCA's scikit-learn contract: ``fit``, ``transform``,
    ``inverse_transform``, ``score``, in a ``Pipeline`` or a ``GridSearchCV``; and an outlier
    detector: ``score_samples``, ``decision_function``, ``predict``, ``p_values``,
    ``error_map`` (:class:`aelab.analysis.detector.Detector` over its run).

    ``transform`` maps each sample to a ``latent_dim``-dimensional code (the posterior mean for
    a variational model), ``inverse_transform`` maps codes back to samples shaped like the data
    seen at fit.

    Parameters
    ----------
    model : str, default="deep"
        An aelab recipe (:data:`aelab.models.MODELS`): ``"shallow"``, ``"deep"``, ``"vae"``
        (dense: any input) or ``"conv"``, ``"denoising"``, ``"conv-vae"`` (convolutional:
        images only).
    latent_dim : int or None, default=20
        Size of the code (PCA's ``n_components``). None: the recipe's.
    hidden : tuple of int or None, default=None
        Layer sizes between input and code for the dense models, e.g. ``(128, 32)``; the
        decoder mirrors them. None: the recipe's (``(256,)`` for ``"deep"``, ``(512,)`` for
        ``"vae"``). Not a parameter of the convolutional models (see ``model_params``).
    noise : str or None, default=None
        Corruption of the training inputs (a denoising autoencoder), e.g.
        ``"gaussian:0.05"``, ``"saltpepper:0.1"``, ``"mask:0.25"``. None: the recipe's (only
        ``"denoising"`` has one); ``"none"``: no corruption.
    epochs : int or None, default=100
        Passes over the training data. None: the recipe's schedule (the notebook's, e.g. 400
        for ``"deep"``).
    batch_size : int or None, default=64
        None: the recipe's.
    learning_rate : float or None, default=None
        None: the optimizer's default (1e-3 for ``"adam"``, ``"adamw"`` and ``"rmsprop"``,
        1e-2 for ``"sgd"``).
    optimizer : {"adam", "adamw", "rmsprop", "sgd"} or None, default=None
        None: the recipe's (``"rmsprop"`` for ``"vae"``, as the notebook trained it;
        ``"adam"`` for the others).
    scale : {"auto", "minmax"} or None, default="auto"
        How ``X`` is brought into the range the model's output layer produces (``[0, 1]`` for
        the recipes' sigmoid). ``"auto"``: unchanged when ``X`` at fit lies in that range,
        otherwise a min-max scaling to ``[0, 1]`` learned at fit; ``"minmax"``: always that
        scaling; None: never scale, and refuse data outside the range. The scaling is
        per feature for 2-D ``X`` and per channel for images; constant features map to 0.5.
        ``inverse_transform`` and ``sample`` undo it. After fit, values outside the range
        seen at fit pass on to the encoder (which takes any value); only ``scale=None``
        refuses them.
    device : str, default="auto"
        ``"auto"`` (CUDA, then Apple MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``,
        ``"mps"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffling and any noise: the same integer gives the
        same model. The global torch and numpy random states are left untouched. With
        ``None``, convolutional models on a CPU also run each pass of each convolution in
        the faster of oneDNN and PyTorch's own kernels, chosen by timing (``conv_kernels="auto"``
        in :class:`aelab.TrainConfig`), which no integer could make reproducible.
    verbose : bool, default=False
        Show a progress bar while training.
    data_format : {"channels_last", "channels_first"}, default="channels_last"
        Layout of 4-D image input: ``(n, H, W, C)`` (numpy, PIL, Keras) or ``(n, C, H, W)``
        (torch, ``aelab.ImageSet.images``).
    model_params : dict or None, default=None
        Further recipe overrides, e.g. ``{"channels": (16, 32)}`` for a convolutional model,
        ``{"beta": 0.01}`` for a VAE, ``{"output_activation": None}`` for a linear output.
    fpr : float, default=0.05
        The false-positive rate of the outlier threshold: the share of normal samples
        ``predict`` calls outliers (see :meth:`score_samples`).
    contamination : float or None, default=None
        PyOD's and scikit-learn's spelling: the share of outliers expected; when given, the
        threshold is set at this rate instead of ``fpr``. At most 0.5.
    calibration : float, default=0.1
        The share of ``X`` held out of training at fit to set the threshold on normal samples
        the model did not see. 0: train on all of ``X`` and set the threshold on the training
        samples themselves (their errors are smaller: more false positives than ``fpr``).
    anomaly_score : {"reconstruction", "elbo"}, default="reconstruction"
        What :meth:`score_samples` measures: the negative reconstruction error, or for a
        variational model its evidence lower bound (which also counts how unlikely the code is).
    log : str or None, default=None
        Experiment trackers to log the training to: ``"tensorboard[:DIR]"`` (default DIR
        ``runs/tensorboard/MODEL-DATE-TIME``), ``"mlflow[:URI]"`` (default: a file store in
        ``runs/mlruns``), or both comma-separated (:mod:`aelab.tracking`; needs
        ``pip install "aelab[tensorboard]"`` or ``"aelab[mlflow]"``). The calibration share of
        ``X`` is the held-out set shown. None: nothing is logged.

    Attributes
    ----------
    run_ : aelab.Run
        The trained model with its configuration and history, as :func:`aelab.load_run` gives a
        run directory (:meth:`from_run` builds an estimator from one).
    model_ : aelab.models.BaseAutoencoder
        ``run_.model``: the trained torch module (in eval mode, on the training device).
    history_ : list of dict
        ``run_.history``: one record per epoch, ``{"epoch", "loss", "heldout_loss",
        "validation_loss", "seconds", "threads"}``.
    n_features_in_ : int
        Number of values per sample seen at fit (``H * W * C`` for images).
    feature_names_in_ : ndarray of str, shape (n_features_in_,)
        Column names of a DataFrame ``X``; only set when ``X`` had string column names.
    input_shape_ : tuple of int
        ``(C, H, W)`` the model was built for; ``(1, 1, n_features)`` for 2-D ``X``.
    sample_shape_ : tuple of int
        Shape of one sample as given at fit: ``(n_features,)``, ``(H, W)``, ``(H, W, C)``...
        ``inverse_transform`` and ``sample`` return samples of this shape.
    data_min_, data_range_ : ndarray or None
        The min-max scaling learned at fit, broadcastable to ``sample_shape_`` (per feature,
        or per channel for images); None when ``X`` was not scaled.
    calibration_scores_ : ndarray or None
        The sorted scores of the calibration samples (the share of ``X`` held out at fit, or
        the samples :meth:`set_threshold` took): the threshold at any rate, and the p-values.
        None for a run of ``aelab train`` until :meth:`set_threshold`.
    threshold_ : float
        Samples whose score is below it are outliers: set at fit from the calibration share of
        ``X`` at the rate ``fpr`` (``offset_`` is the same number, scikit-learn's name).

    See Also
    --------
    sklearn.decomposition.PCA : The best linear code, which this estimator mirrors.
    aelab.runs.load_run : Opens a directory written by :meth:`save`.

    Notes
    -----
    :meth:`score` is the negative mean squared reconstruction error per value, in the units of
    ``X`` (after undoing any scaling), so higher is better as scikit-learn's model selection
    expects. The model trains in float32. float32 input is encoded in float32 and gives
    float32; any other input is encoded with a float64 copy of the weights and gives float64,
    the same for a row whatever batch it comes in (pass float32 for speed on a GPU).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import PCA
    >>> from aelab.estimator import Autoencoder
    >>> X, _ = load_digits(return_X_y=True)  # (1797, 64), pixel values 0..16
    >>> pca = PCA(n_components=16).fit(X)
    >>> ae = Autoencoder(latent_dim=16, epochs=20, random_state=0, device="cpu").fit(X)
    >>> pca.transform(X).shape, ae.transform(X).shape
    ((1797, 16), (1797, 16))
    >>> ae.inverse_transform(ae.transform(X)).shape  # back in X's units (0..16)
    (1797, 64)
    >>> ae.get_feature_names_out()[:2]
    array(['autoencoder0', 'autoencoder1'], dtype=object)

    In a pipeline, exactly where PCA would go:

    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> clf = make_pipeline(Autoencoder(latent_dim=16, epochs=20, random_state=0),
    ...                     LogisticRegression(max_iter=1000))  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str = "deep",
        latent_dim: int | None = 20,
        hidden: tuple[int, ...] | None = None,
        noise: str | None = None,
        epochs: int | None = 100,
        batch_size: int | None = 64,
        learning_rate: float | None = None,
        optimizer: str | None = None,
        scale: str | None = "auto",
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
        data_format: str = "channels_last",
        model_params: dict[str, Any] | None = None,
        fpr: float = 0.05,
        contamination: float | None = None,
        calibration: float = 0.1,
        anomaly_score: str = "reconstruction",
        log: str | None = None,
    ) -> None:
        self.model = model
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.noise = noise
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.scale = scale
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.data_format = data_format
        self.model_params = model_params
        self.fpr = fpr
        self.contamination = contamination
        self.calibration = calibration
        self.anomaly_score = anomaly_score
        self.log = log

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None) -> Autoencoder:
        """Train the autoencoder on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, H, W) or (n, H, W, C)
            Training data: a table (any dense model) or images (any model); ``(n, C, H, W)``
            with ``data_format="channels_first"``. See ``scale`` for values outside ``[0, 1]``.
        y : None
            Ignored; present for the scikit-learn API.

        Returns
        -------
        self : Autoencoder
        """
        self.__dict__.pop("run_", None)  # a failed refit leaves the estimator unfitted
        recipe = check_params(self)
        X = validate(self, X, reset=True)
        self.sample_shape_ = tuple(int(s) for s in X.shape[1:])
        self.input_shape_ = layout.input_shape(self.sample_shape_, self.data_format)
        check_layout(self, recipe, X)
        resolved = resolve(
            self.model, self.input_shape_, model=model_overrides(self), train=train_settings(self)
        )
        # the range of all of X, calibration rows included
        self.data_min_, self.data_range_ = fit_scaling(self, X, resolved.model.output_activation)
        self.run_, held = train(self, X, recipe, resolved)
        self.calibration_scores_ = None
        calibrating = X if held is None else X[held]  # checked already: no second check (it
        #   would warn of the feature names the rows no longer carry)
        x = self._to_tensor(calibrating, calibrating.dtype)
        self.calibration_scores_ = anomaly.calibrate(self._detector().scores(x))
        return self

    @classmethod
    def from_run(cls, run: Run, device: str | None = None) -> Autoencoder:
        """A fitted estimator of a trained :class:`aelab.Run`: one :meth:`save` wrote (its
        parameters, scaling and calibration restored from ``config.json``), or one of
        ``aelab train``, which takes images ``(n, C, H, W)`` in ``[0, 1]``
        (``data_format="channels_first"``) as it was trained on and has no threshold until
        :meth:`set_threshold`. ``device`` moves the model (None: where it is)."""
        section = estimator_section(run.config)
        unknown = sorted(set(section["params"]) - set(cls._get_param_names()))
        if unknown:
            raise ValueError(
                f"config.json: 'estimator.params' holds {unknown!r}, not parameters of "
                f"{cls.__name__}; it is not an estimator record aelab can read"
            )
        est = cls(**section["params"])
        if device is not None:
            run.model.to(resolve_device(device))
        est.run_ = run
        est.n_features_in_ = int(section["n_features_in"])
        if section.get("feature_names_in") is not None:
            est.feature_names_in_ = np.asarray(section["feature_names_in"], dtype=object)
        est.sample_shape_ = tuple(section["sample_shape"])
        est.input_shape_ = tuple(run.model.input_shape)
        est.data_min_, est.data_range_ = section["scaling"]
        scores = section.get("calibration_scores")
        est.calibration_scores_ = None if scores is None else anomaly.calibrate(scores)
        return est

    # ------------------------------------------------------------------ transforming

    def transform(self, X) -> np.ndarray:
        """Codes of ``X``: the encoder's output (the posterior mean for a VAE).

        Parameters
        ----------
        X : array-like shaped like the data seen at fit

        Returns
        -------
        Z : ndarray of shape (n_samples, latent_dim)
            float32 for float32 ``X``, float64 otherwise.
        """
        X = checked(self, X)
        return self._map(encoded, X).numpy().astype(X.dtype, copy=False)

    def inverse_transform(self, X) -> np.ndarray:
        """Reconstructions from codes, in the shape and units of the data seen at fit.

        Parameters
        ----------
        X : array-like of shape (n_samples, latent_dim)
            Codes, e.g. from :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, *sample_shape_)
            float32 for float32 codes, float64 otherwise; any scaling undone.
        """
        Z = checked_codes(self, X)
        return self._from_tensor(self.run_.map(decoded, torch.tensor(Z), takes="codes"), Z.dtype)

    def score(self, X, y=None) -> float:
        """Negative mean squared reconstruction error per value, in ``X``'s units.

        Higher is better (0 is perfect), so ``GridSearchCV`` can use it unchanged. With
        ``scale`` active the error is measured after undoing the scaling.

        Parameters
        ----------
        X : array-like shaped like the data seen at fit
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        X = checked(self, X)
        x_hat = self._from_tensor(self._map(reconstructed, X), np.float64)
        return -float(np.mean((np.asarray(X, dtype=np.float64) - x_hat) ** 2))

    @PriorOnly
    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """Draw new samples: decode codes drawn from the model's prior (models with one: the
        variational families' N(0, I), the VQ-VAE's codebook).

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState instance or None, default=None
            Seeds the codes drawn.

        Returns
        -------
        X : ndarray of shape (n_samples, *sample_shape_), float64
            In the units of the data seen at fit (any scaling undone).
        """
        check_is_fitted(self)
        n = as_int(n_samples)
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n_samples={n_samples!r} is not valid; expected an integer >= 0")
        z = self.model_.sample_prior(n, check_random_state(random_state))
        return self._from_tensor(self.run_.map(decoded, torch.tensor(z), takes="codes"), np.float64)

    # ------------------------------------------------------------------ outliers

    def _scoring(self, X) -> tuple[Detector, torch.Tensor]:
        """The detector and the checked ``X`` as the model's batch: what :class:`OutlierMixin`
        asks of its host."""
        X = checked(self, X)
        return self._detector(), self._to_tensor(X, X.dtype)

    def _detector(self) -> Detector:
        """The detector of the run, its errors in ``X``'s units (the scaling undone)."""
        units = None
        if self.data_range_ is not None:  # per feature or channel, in the model's layout
            full = np.broadcast_to(self.data_range_, (1, *self.sample_shape_))
            units = layout.to_batch(full, self.input_shape_, self.data_format, None, np.float64)
            units = units[0].numpy()
        return Detector(self.run_, score=self.anomaly_score, units=units,
                        calibration=self.calibration_scores_)  # fmt: skip

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write a run directory: ``config.json``, ``model.safetensors``, ``history.json``.

        The format is ``aelab train``'s (:class:`aelab.runs.RunConfig`), so
        :func:`aelab.load_run` opens it; the ``"estimator"`` section of ``config.json`` adds the
        constructor parameters, the input shape, the fitted scaling and the calibration scores.
        Nothing is pickled.

        Parameters
        ----------
        path : str or path-like
            A new or empty folder; an earlier run there is replaced only with ``overwrite``.
        overwrite : bool, default=False

        Returns
        -------
        path : pathlib.Path
        """
        check_is_fitted(self)
        return save(self, Path(path), overwrite=overwrite)

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str | None = None, *, legacy: bool = False
    ) -> Autoencoder:
        """Open a run directory written by :meth:`save` (or by ``aelab train``): see
        :meth:`from_run`.

        Parameters
        ----------
        path : str or path-like
        device : str or None, default=None
            Where to put the model; None: the saved ``device`` parameter (``"auto"``: a GPU if
            there is one).
        legacy : bool, default=False
            Read a run of aelab 0.1 (no manifest) unchecked.

        Returns
        -------
        estimator : Autoencoder
            Fitted: ``transform``, ``inverse_transform``, ``score`` work at once.
        """
        config = RunConfig.load(path, legacy=legacy)
        device = (
            estimator_section(config)["params"].get("device", "auto") if device is None else device
        )
        return cls.from_run(open_run(path, config, device, legacy=legacy))


__all__ = ["Autoencoder"]
