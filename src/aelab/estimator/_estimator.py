"""``Autoencoder``: a scikit-learn transformer that stands wherever ``PCA`` stands.

``fit`` trains one of aelab's recipes (see :data:`aelab.models.MODELS`), resolved as every
entry point resolves it (:func:`aelab.recipes.resolve`), with aelab's
:class:`~aelab.train.Trainer`; ``transform`` gives the codes, ``inverse_transform`` the
reconstructions. Tabular data ``(n_samples, n_features)`` and images ``(n, H, W)`` /
``(n, H, W, C)`` are both accepted; data outside the range the model's output layer can produce
(``[0, 1]`` for the recipes' sigmoid) is min-max scaled at fit and unscaled on the way out.

A fitted estimator saves to the run-directory contract of ``aelab train``
(:mod:`aelab.runconfig`; ``config.json``, ``model.safetensors``, ``history.json``) with an
``"estimator"`` section in ``config.json``; nothing is pickled, and :func:`aelab.runs.load_run`
opens the directory too.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def validate_data(estimator, X, **kwargs):
        return estimator._validate_data(X, **kwargs)


from .. import tracking
from ..device import memory_format
from ..models import MODELS, BaseAutoencoder, Recipe, get_recipe
from ..recipes import given, resolve
from ..train import Trainer
from . import _layout as layout
from ._layout import DATA_FORMATS, SCALES, as_int, output_range, plain, seed_of
from ._outliers import OutlierMethods

_INFER_BATCH = 512  # rows per forward pass in transform / inverse_transform / score


def _variational_models() -> str:
    return ", ".join(repr(n) for n, r in MODELS.items() if r.family_class.variational)


class _VariationalOnly:
    """A method that exists only on estimators whose model is variational.

    ``hasattr(Autoencoder(model="deep"), "sample")`` is False, and calling it says why.
    """

    def __init__(self, fn):
        self.fn = fn
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.fn
        if not obj._is_variational():
            raise AttributeError(
                f"{self.__name__}() is only available for variational models "
                f"({_variational_models()}); model={obj.model!r} is not variational"
            )
        return self.fn.__get__(obj, owner)


class Autoencoder(OutlierMethods, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """An autoencoder with PCA's scikit-learn contract: ``fit``, ``transform``,
    ``inverse_transform``, ``score``, in a ``Pipeline`` or a ``GridSearchCV``; and an outlier
    detector: ``score_samples``, ``decision_function``, ``predict``, ``p_values``,
    ``error_map`` (:mod:`aelab.estimator._outliers`).

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
    model_ : aelab.models.BaseAutoencoder
        The trained torch module (in eval mode, on the training device).
    history_ : list of dict
        One record per epoch: ``{"epoch", "loss", "heldout_loss", "validation_loss", "seconds"}``.
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

    # ------------------------------------------------------------------ scikit-learn plumbing

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The network computes in float32; transform returns float32 for float32 input and
        # float64 for float64 input (values exact to float32 precision), as PCA does.
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _more_tags(self) -> dict[str, Any]:  # the same, for scikit-learn < 1.6
        return {"preserves_dtype": [np.float64, np.float32]}

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    @property
    def _n_features_out(self) -> int:
        """Number of codes, for ``get_feature_names_out`` (``autoencoder0``, ...)."""
        return self.model_.latent_dim

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        model = state.get("model_")
        if model is not None and _device_of(model).type != "cpu":
            # Pickles open anywhere: a model trained on a GPU is stored on the CPU.
            state["model_"] = copy.deepcopy(model).to("cpu")
        return state

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None) -> Autoencoder:
        """Train the autoencoder on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, H, W) or (n, H, W, C)
            Training data: a table (any dense model) or images (any model). See ``scale`` for
            values outside ``[0, 1]``.
        y : None
            Ignored; present for the scikit-learn API.

        Returns
        -------
        self : Autoencoder
        """
        self.__dict__.pop("model_", None)  # a failed refit leaves the estimator unfitted
        recipe = self._check_params()
        X = self._validate(X, reset=True)
        held = self._calibration_split(len(X), np.random.default_rng(seed_of(self.random_state)))
        X_train = X if held is None else np.delete(X, held, axis=0)
        self.sample_shape_ = tuple(int(s) for s in X.shape[1:])
        self.input_shape_ = layout.input_shape(self.sample_shape_, self.data_format)
        if recipe.family_class.input_layout == "image" and X.ndim == 2:
            dense = [n for n, r in MODELS.items() if r.family_class.input_layout == "any"]
            raise ValueError(
                f"model={self.model!r} is convolutional and needs images, but X is 2-D with "
                f"shape {X.shape}; pass images shaped (n, H, W) or (n, H, W, C), or use a model "
                f"that takes tables ({', '.join(repr(n) for n in dense)})"
            )
        resolved = resolve(
            self.model, self.input_shape_, model=self._overrides(), train=self._train_settings()
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(resolved.train.seed)  # same random_state, same initial weights
            model = recipe.family_class(resolved.model)
        self._fit_scaling(X, model)  # the range of all of X, calibration rows included
        trainer = Trainer(model, resolved.train)
        trackers = []
        if self.log:  # the calibration rows (else the first training rows) as the held-out set
            shown = X[held] if held is not None and len(held) else X_train
            pictures = len(self.sample_shape_) > 1
            heldout = tracking.Heldout(self._to_tensor(shown[: tracking.EMBEDDED]), None, pictures)
            model_params = {"name": self.model, "family": recipe.family, **resolved.model.to_dict()}
            params = {"model": model_params, "train": resolved.train.to_dict()}
            trackers = tracking.trackers(self.log, self.model, params=params, heldout=heldout)
        x_train = self._to_tensor(X_train)
        trainer.fit(x_train, progress=bool(self.verbose), desc=self.model, callbacks=trackers)
        self.model_ = trainer.model.eval()
        self.history_ = trainer.history
        self._train_config = resolved.train
        self._n_samples_fit = len(X_train)
        self._calibrate_on(X if held is None else X[held])
        return self

    def _check_params(self) -> Recipe:
        recipe = get_recipe(self.model)
        if self.scale not in SCALES:
            raise ValueError(f"scale={self.scale!r} is not valid; allowed: 'auto', 'minmax', None")
        if self.data_format not in DATA_FORMATS:
            raise ValueError(
                f"data_format={self.data_format!r} is not valid; allowed: "
                f"{', '.join(repr(f) for f in DATA_FORMATS)}"
            )
        if self.model_params is not None and not isinstance(self.model_params, dict):
            raise ValueError(
                f"model_params={self.model_params!r} is not valid; expected a dict or None"
            )
        for key in ("latent_dim", "hidden", "input_shape"):
            if key in (self.model_params or {}):
                raise ValueError(
                    f"model_params may not hold {key!r}; "
                    + ("input_shape comes from X" if key == "input_shape" else f"pass {key}=")
                )
        if self.noise is not None and not isinstance(self.noise, str):
            raise ValueError(f"noise={self.noise!r} is not valid; expected a string or None")
        self._check_calibration()
        self._check_anomaly_score(recipe.family_class.variational)
        tracking.parse_log(self.log)
        return recipe

    def _train_settings(self) -> dict[str, Any]:
        """The training settings this estimator's parameters give (None: the recipe's)."""
        settings = given(
            epochs=as_int(self.epochs),
            batch_size=as_int(self.batch_size),
            optimizer=self.optimizer,
            noise=self.noise,  # "none": no noise even where the recipe has some
        )
        return {
            **settings,
            "learning_rate": self.learning_rate,
            "seed": seed_of(self.random_state),
            "device": self.device,
            # kernels chosen by timing differ from run to run in the last bits of the floats
            "conv_kernels": "auto" if self.random_state is None else "default",
        }

    def _overrides(self) -> dict[str, Any]:
        """Model config overrides: ``model_params`` as given (None is a value there), then
        ``latent_dim`` and ``hidden`` unless None (the recipe's)."""
        overrides = {k: plain(v) for k, v in (self.model_params or {}).items()}
        if self.latent_dim is not None:
            overrides["latent_dim"] = as_int(self.latent_dim)
        if self.hidden is not None:
            hidden = self.hidden
            overrides["hidden"] = tuple(as_int(h) for h in np.atleast_1d(hidden).tolist())
        return overrides

    def _is_variational(self) -> bool:
        if hasattr(self, "model_"):
            return bool(self.model_.variational)
        return self.model in MODELS and MODELS[self.model].family_class.variational

    # ------------------------------------------------------------------ data in and out

    def _validate(self, X, *, reset: bool) -> np.ndarray:
        """``X`` as a float32/float64 array of 2 to 4 dimensions, checked against the fit."""
        kwargs = {"dtype": [np.float64, np.float32], "allow_nd": True}
        if reset or len(self.sample_shape_) == 1:
            X = validate_data(self, X, reset=reset, **kwargs)
        else:  # images: validate_data would count only the first axis as features
            X = check_array(X, estimator=self, **kwargs)
        if X.ndim > 4:
            raise ValueError(
                f"X has {X.ndim} dimensions with shape {X.shape}; expected (n_samples, "
                "n_features), (n, H, W) or (n, H, W, C)"
            )
        if reset:
            self.n_features_in_ = int(np.prod(X.shape[1:]))
        elif X.shape[1:] != self.sample_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but {type(self).__name__} was fitted on "
                f"samples of shape {self.sample_shape_}"
            )
        return X

    def _fit_scaling(self, X: np.ndarray, model: BaseAutoencoder) -> None:
        lo, hi = output_range(model.config.output_activation)
        x_min, x_max = float(X.min()), float(X.max())
        in_range = lo <= x_min and x_max <= hi
        if self.scale is None and not in_range:
            raise ValueError(_range_message(self, model, x_min, x_max, lo, hi))
        if self.scale == "minmax" or (self.scale == "auto" and not in_range):
            axes = layout.channel_axes(X.ndim, self.data_format)
            self.data_min_, self.data_range_ = layout.fit_minmax(X, axes)
        else:
            self.data_min_ = self.data_range_ = None

    @property
    def _scaling(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None if self.data_min_ is None else (self.data_min_, self.data_range_)

    def _check_range(self, X: np.ndarray) -> None:
        """``scale=None`` refuses out-of-range input at transform time as at fit."""
        if self.scale is None and X.size:
            lo, hi = output_range(self.model_.config.output_activation)
            x_min, x_max = float(X.min()), float(X.max())
            if not (lo <= x_min and x_max <= hi):
                raise ValueError(_range_message(self, self.model_, x_min, x_max, lo, hi))

    def _to_tensor(self, X: np.ndarray, dtype=np.float32) -> torch.Tensor:
        """Samples -> scaled ``(n, C, H, W)`` of ``dtype``."""
        return layout.to_batch(X, self.input_shape_, self.data_format, self._scaling, dtype)

    def _from_tensor(self, x: torch.Tensor, dtype) -> np.ndarray:
        """Model output ``(n, C, H, W)`` -> unscaled samples of ``sample_shape_``."""
        return layout.from_batch(x, self.sample_shape_, self.data_format, self._scaling, dtype)

    @torch.no_grad()
    def _map(self, fn, t: torch.Tensor) -> torch.Tensor:
        """``fn(model, batch)`` over ``t`` in batches, in ``t``'s dtype; the result on the CPU.

        float64 input runs through a float64 copy of the (float32-trained) weights: the result
        is then the same, to float64 precision, whatever the batch (BLAS picks different float32
        kernels for one row and for many), as scikit-learn expects of a transformer. Apple's MPS
        has no float64, so there it stays float32.
        """
        model = self.model_
        device = _device_of(model)
        if t.dtype == torch.float64 and device.type != "mps":
            model = copy.deepcopy(model).double()
        else:
            t = t.float()
        model.eval()
        fmt = memory_format(model) if t.ndim == 4 else torch.contiguous_format  # as in training
        outs = [fn(model, b.to(device, memory_format=fmt)).cpu() for b in t.split(_INFER_BATCH)]
        return torch.cat(outs) if outs else fn(model, t.to(device)).cpu()

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
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        self._check_range(X)
        codes = self._map(_encode, self._to_tensor(X, X.dtype))
        return codes.numpy().astype(X.dtype, copy=False)

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
        check_is_fitted(self)
        Z = check_array(X, dtype=[np.float64, np.float32], estimator=self)
        if Z.shape[1] != self.model_.latent_dim:
            raise ValueError(
                f"X has {Z.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.model_.latent_dim} codes (latent_dim) as input"
            )
        return self._from_tensor(self._map(_decode, torch.tensor(Z)), Z.dtype)

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
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        self._check_range(X)
        x_hat = self._map(_reconstruct, self._to_tensor(X, X.dtype))
        x_hat = self._from_tensor(x_hat, np.float64)
        return -float(np.mean((np.asarray(X, dtype=np.float64) - x_hat) ** 2))

    @_VariationalOnly
    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """Draw new samples: decode codes ``z ~ N(0, I)`` (variational models only).

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
        z = check_random_state(random_state).standard_normal((n, self.model_.latent_dim))
        return self._from_tensor(self._map(_decode, torch.tensor(z)), np.float64)

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write a run directory: ``config.json``, ``model.safetensors``, ``history.json``.

        The format is ``aelab train``'s (:class:`aelab.runconfig.RunConfig`), so
        :func:`aelab.runs.load_run` opens it; the ``"estimator"`` section of ``config.json``
        adds the constructor parameters, the input shape and the fitted scaling. Nothing is
        pickled.

        Parameters
        ----------
        path : str or path-like
            A new or empty folder; an earlier run there is replaced only with ``overwrite``.
        overwrite : bool, default=False

        Returns
        -------
        path : pathlib.Path
        """
        from ._files import save

        check_is_fitted(self)
        return save(self, Path(path), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> Autoencoder:
        """Open a run directory written by :meth:`save` (or by ``aelab train``).

        A directory from ``aelab train`` has no ``"estimator"`` section; the estimator then
        takes images ``(n, C, H, W)`` in ``[0, 1]`` (``data_format="channels_first"``), as the
        run was trained on.

        Parameters
        ----------
        path : str or path-like
        device : str or None, default=None
            Where to put the model; None: the saved ``device`` parameter (``"auto"``: a GPU if
            there is one).

        Returns
        -------
        estimator : Autoencoder
            Fitted: ``transform``, ``inverse_transform``, ``score`` work at once.
        """
        from ._files import load

        return load(cls, Path(path), device)


def _range_message(est, model, x_min, x_max, lo, hi) -> str:
    act = model.config.output_activation
    return (
        f"X has values in [{x_min:g}, {x_max:g}], but model={est.model!r} ends in "
        f"{act or 'a linear layer'} and reconstructs only values in [{lo:g}, {hi:g}]; "
        f"rescale X into that range or pass scale='auto' (a min-max scaling learned at fit)"
    )


def _encode(model: BaseAutoencoder, x: torch.Tensor) -> torch.Tensor:
    return model.encode(x)


def _decode(model: BaseAutoencoder, z: torch.Tensor) -> torch.Tensor:
    return model.decode(z)


def _reconstruct(model: BaseAutoencoder, x: torch.Tensor) -> torch.Tensor:
    return model.decode(model.encode(x))


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


__all__ = ["Autoencoder"]
