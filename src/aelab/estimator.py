"""``Autoencoder``: a scikit-learn transformer that stands wherever ``PCA`` stands.

``fit`` trains one of aelab's presets (see :data:`aelab.models.MODELS`) with aelab's
:class:`~aelab.train.Trainer`; ``transform`` gives the codes, ``inverse_transform`` the
reconstructions. Tabular data ``(n_samples, n_features)`` and images ``(n, H, W)`` /
``(n, H, W, C)`` are both accepted; data outside the range the model's output layer can produce
(``[0, 1]`` for the presets' sigmoid) is min-max scaled at fit and unscaled on the way out.

A fitted estimator saves to the run-directory format of ``aelab train`` (``config.json``,
``model.safetensors``, ``history.json``) plus an ``"estimator"`` section in ``config.json``;
nothing is pickled, and :func:`aelab.runs.load_run` opens the directory too.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import numbers
import os
import platform
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def validate_data(estimator, X, **kwargs):
        return estimator._validate_data(X, **kwargs)


from .checkpoint import load_weights, read_json, save_weights, write_json
from .device import memory_format, resolve_device
from .models import FAMILIES, MODELS, BaseAutoencoder, model_config, model_from_config
from .runs import check_replaceable
from .train import TrainConfig, Trainer

SCALES = ("auto", "minmax", None)
DATA_FORMATS = ("channels_last", "channels_first")
CONV_FAMILIES = ("conv", "conv-vae")
VARIATIONAL_FAMILIES = ("vae", "conv-vae")

# What each output activation can produce; ``scale`` keeps the training targets inside it.
# The others (``None``: linear, ``leaky_relu``) are unbounded.
OUTPUT_RANGES: dict[str, tuple[float, float]] = {
    "sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "relu": (0.0, np.inf),
    "elu": (-1.0, np.inf),
    "gelu": (-0.1699, np.inf),  # x * Phi(x) has its minimum -0.16997 at x = -0.7518
}

_INFER_BATCH = 512  # rows per forward pass in transform / inverse_transform / score


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
                f"({', '.join(repr(f) for f in VARIATIONAL_FAMILIES)}); model={obj.model!r} "
                "is not variational"
            )
        return self.fn.__get__(obj, owner)


class Autoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """An autoencoder with PCA's scikit-learn contract: ``fit``, ``transform``,
    ``inverse_transform``, ``score``, in a ``Pipeline`` or a ``GridSearchCV``.

    ``transform`` maps each sample to a ``latent_dim``-dimensional code (the posterior mean for
    a variational model), ``inverse_transform`` maps codes back to samples shaped like the data
    seen at fit.

    Parameters
    ----------
    model : str, default="deep"
        An aelab preset: ``"shallow"``, ``"deep"``, ``"vae"`` (dense: any input) or ``"conv"``,
        ``"denoising"``, ``"conv-vae"`` (convolutional: images only).
    latent_dim : int or None, default=20
        Size of the code (PCA's ``n_components``). None: the preset's.
    hidden : tuple of int or None, default=None
        Layer sizes between input and code for the dense models, e.g. ``(128, 32)``; the
        decoder mirrors them. None: the preset's (``(256,)`` for ``"deep"``, ``(512,)`` for
        ``"vae"``). Not a parameter of the convolutional models (see ``model_params``).
    noise : str or None, default=None
        Corruption of the training inputs (a denoising autoencoder), e.g.
        ``"gaussian:0.05"``, ``"saltpepper:0.1"``, ``"mask:0.25"``. None: the preset's (only
        ``"denoising"`` has one); ``"none"``: no corruption.
    epochs : int, default=100
        Passes over the training data.
    batch_size : int, default=64
    learning_rate : float or None, default=None
        None: the optimizer's default (1e-3 for ``"adam"``, ``"adamw"`` and ``"rmsprop"``,
        1e-2 for ``"sgd"``).
    optimizer : {"adam", "adamw", "rmsprop", "sgd"}, default="adam"
    scale : {"auto", "minmax"} or None, default="auto"
        How ``X`` is brought into the range the model's output layer produces (``[0, 1]`` for
        the presets' sigmoid). ``"auto"``: unchanged when ``X`` at fit lies in that range,
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
        Further preset overrides, e.g. ``{"channels": (16, 32)}`` for a convolutional model,
        ``{"beta": 0.01}`` for a VAE, ``{"output_activation": None}`` for a linear output.

    Attributes
    ----------
    model_ : aelab.models.BaseAutoencoder
        The trained torch module (in eval mode, on the training device).
    history_ : list of dict
        One record per epoch: ``{"epoch", "loss", "heldout_loss", "seconds"}``.
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
        epochs: int = 100,
        batch_size: int = 64,
        learning_rate: float | None = None,
        optimizer: str = "adam",
        scale: str | None = "auto",
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
        data_format: str = "channels_last",
        model_params: dict[str, Any] | None = None,
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
        preset = self._check_params()
        train_config = TrainConfig(
            epochs=_as_int(self.epochs),
            batch_size=_as_int(self.batch_size),
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            seed=_seed(self.random_state),
            device=self.device,
            noise=self._noise(preset),
            # kernels chosen by timing differ from run to run in the last bits of the floats
            conv_kernels="auto" if self.random_state is None else "default",
        )
        X = self._validate(X, reset=True)
        self.sample_shape_ = tuple(int(s) for s in X.shape[1:])
        self.input_shape_ = self._input_shape(self.sample_shape_)
        if preset.family in CONV_FAMILIES and X.ndim == 2:
            raise ValueError(
                f"model={self.model!r} is convolutional and needs images, but X is 2-D with "
                f"shape {X.shape}; pass images shaped (n, H, W) or (n, H, W, C), or use a dense "
                "model ('shallow', 'deep', 'vae')"
            )
        overrides = self._overrides()
        config = model_config(self.model, self.input_shape_, **overrides)
        # model_config skips None overrides ("the preset's"); here None is a value, as in
        # model_params={"output_activation": None} for a linear output.
        nones = {k: None for k, v in overrides.items() if v is None}
        config = dataclasses.replace(config, **nones) if nones else config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(train_config.seed)  # same random_state, same initial weights
            model = FAMILIES[preset.family](config)
        self._fit_scaling(X, model)
        trainer = Trainer(model, train_config)
        trainer.fit(self._to_tensor(X), progress=bool(self.verbose), desc=self.model)
        self.model_ = trainer.model.eval()
        self.history_ = trainer.history
        self._train_config = train_config.to_dict()
        self._n_samples_fit = len(X)
        return self

    def _check_params(self):
        if not isinstance(self.model, str) or self.model not in MODELS:
            raise ValueError(
                f"model={self.model!r} is not a known model; allowed: {', '.join(MODELS)}"
            )
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
        return MODELS[self.model]

    def _noise(self, preset) -> str | None:
        if self.noise is None:
            return preset.train.get("noise")
        return None if self.noise.strip().lower() in ("none", "") else self.noise

    def _overrides(self) -> dict[str, Any]:
        overrides = {k: _plain(v) for k, v in (self.model_params or {}).items()}
        if self.latent_dim is not None:
            overrides["latent_dim"] = _as_int(self.latent_dim)
        if self.hidden is not None:
            hidden = self.hidden
            overrides["hidden"] = tuple(_as_int(h) for h in np.atleast_1d(hidden).tolist())
        return overrides

    def _is_variational(self) -> bool:
        if hasattr(self, "model_"):
            return bool(self.model_.variational)
        return self.model in MODELS and MODELS[self.model].family in VARIATIONAL_FAMILIES

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

    def _input_shape(self, sample_shape: tuple[int, ...]) -> tuple[int, int, int]:
        if len(sample_shape) == 1:  # a table: one row of n_features "pixels"
            return (1, 1, sample_shape[0])
        if len(sample_shape) == 2:  # (H, W): grayscale
            return (1, *sample_shape)
        if self.data_format == "channels_last":
            h, w, c = sample_shape
            return (c, h, w)
        return tuple(sample_shape)

    def _channel_axes(self, ndim: int) -> tuple[int, ...]:
        """Axes of a batch ``(n, *sample_shape)`` the scaling reduces over."""
        if ndim == 2:
            return (0,)  # per feature
        if ndim == 4 and self.data_format == "channels_last":
            return (0, 1, 2)  # per channel
        if ndim == 4:
            return (0, 2, 3)
        return (0, 1, 2)  # (n, H, W): one channel

    def _output_range(self, model: BaseAutoencoder) -> tuple[float, float]:
        return OUTPUT_RANGES.get(model.config.output_activation, (-np.inf, np.inf))

    def _fit_scaling(self, X: np.ndarray, model: BaseAutoencoder) -> None:
        lo, hi = self._output_range(model)
        x_min, x_max = float(X.min()), float(X.max())
        in_range = lo <= x_min and x_max <= hi
        if self.scale is None and not in_range:
            raise ValueError(_range_message(self, model, x_min, x_max, lo, hi))
        if self.scale == "minmax" or (self.scale == "auto" and not in_range):
            axes = self._channel_axes(X.ndim)
            data_min = X.min(axis=axes, keepdims=True).astype(np.float64)[0]
            data_range = X.max(axis=axes, keepdims=True).astype(np.float64)[0] - data_min
            constant = data_range == 0  # map to 0.5, the middle of [0, 1], restore exactly
            data_range[constant] = 1.0
            data_min[constant] -= 0.5
            self.data_min_, self.data_range_ = data_min, data_range
        else:
            self.data_min_ = self.data_range_ = None

    def _check_range(self, X: np.ndarray) -> None:
        """``scale=None`` refuses out-of-range input at transform time as at fit."""
        if self.scale is None and X.size:
            lo, hi = self._output_range(self.model_)
            x_min, x_max = float(X.min()), float(X.max())
            if not (lo <= x_min and x_max <= hi):
                raise ValueError(_range_message(self, self.model_, x_min, x_max, lo, hi))

    def _to_tensor(self, X: np.ndarray, dtype=np.float32) -> torch.Tensor:
        """Samples -> scaled ``(n, C, H, W)`` of ``dtype``."""
        if self.data_min_ is not None:
            X = (X - self.data_min_) / self.data_range_
        X = np.asarray(X, dtype=dtype)
        if X.ndim == 4 and self.data_format == "channels_last":
            X = X.transpose(0, 3, 1, 2)
        return torch.tensor(np.ascontiguousarray(X)).reshape(len(X), *self.input_shape_)

    def _from_tensor(self, x: torch.Tensor, dtype) -> np.ndarray:
        """Model output ``(n, C, H, W)`` -> unscaled samples of ``sample_shape_``."""
        x = x.numpy()
        if len(self.sample_shape_) == 3 and self.data_format == "channels_last":
            x = x.transpose(0, 2, 3, 1)
        x = x.reshape(len(x), *self.sample_shape_).astype(dtype)
        if self.data_min_ is not None:
            x = (x * self.data_range_ + self.data_min_).astype(dtype)
        return x

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
        n = _as_int(n_samples)
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n_samples={n_samples!r} is not valid; expected an integer >= 0")
        z = check_random_state(random_state).standard_normal((n, self.model_.latent_dim))
        return self._from_tensor(self._map(_decode, torch.tensor(z)), np.float64)

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write a run directory: ``config.json``, ``model.safetensors``, ``history.json``.

        The format is ``aelab train``'s, so :func:`aelab.runs.load_run` opens it; the
        ``"estimator"`` section of ``config.json`` adds the constructor parameters, the input
        shape and the fitted scaling. Nothing is pickled.

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
        out = Path(path)
        check_replaceable(out, overwrite=overwrite, name="path", flag="overwrite=True")
        config = self._run_config()  # before touching the folder: it may refuse a parameter
        if out.is_dir() and overwrite:
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", config)
        save_weights(self.model_, out / "model.safetensors")
        write_json(out / "history.json", self.history_)
        return out

    def _run_config(self) -> dict[str, Any]:
        from ._version import __version__
        from .runs import FORMAT_VERSION

        params = {}
        for name, value in self.get_params(deep=False).items():
            if name == "random_state" and not (
                value is None or isinstance(value, numbers.Integral)
            ):
                value = None  # a RandomState instance: "train.seed" records the seed it gave
            value = _plain(value)
            try:
                json.dumps(value)
            except TypeError:
                raise ValueError(
                    f"{name}={value!r} cannot be saved as JSON; save() stores parameters in "
                    "config.json"
                ) from None
            params[name] = value
        model = self.model_
        scaling = None
        if self.data_min_ is not None:
            scaling = {
                "kind": "minmax",
                "shape": list(self.data_min_.shape),
                "data_min": self.data_min_.ravel().tolist(),
                "data_range": self.data_range_.ravel().tolist(),
            }
        names = getattr(self, "feature_names_in_", None)
        return {
            "format": FORMAT_VERSION,
            "model": {"name": self.model, "family": model.family, "config": model.config.to_dict()},
            "data": None,  # in-memory arrays: nothing to reload the data from
            "split": {
                "n_train": int(self._n_train()),
                "n_heldout": 0,
                "image_shape": list(self.input_shape_),
            },
            "train": dict(self._train_config),
            "versions": {
                "aelab": __version__,
                "torch": torch.__version__,
                "scikit-learn": sklearn.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
            "estimator": {
                "class": f"{type(self).__module__}.{type(self).__qualname__}",
                "params": params,
                "n_features_in": int(self.n_features_in_),
                "feature_names_in": None if names is None else [str(n) for n in names],
                "sample_shape": list(self.sample_shape_),
                "scaling": scaling,
            },
        }

    def _n_train(self) -> int:
        return getattr(self, "_n_samples_fit", 0)

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
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"path='{path}' is not a run directory (no config.json)")
        config = read_json(path / "config.json")
        section = config.get("estimator")
        model = model_from_config(config["model"]["family"], config["model"]["config"])
        train = config.get("train", {})
        if section is None:  # a run of `aelab train`: rebuild the parameters it implies
            mc = config["model"]["config"]
            params = {
                "model": config["model"]["name"],
                "latent_dim": mc["latent_dim"],
                "epochs": train.get("epochs", 100),
                "batch_size": train.get("batch_size", 64),
                "optimizer": train.get("optimizer", "adam"),
                "learning_rate": train.get("learning_rate"),
                "noise": train.get("noise") or "none",
                "random_state": train.get("seed"),
                "scale": None,
                "data_format": "channels_first",
            }
            if "hidden" in mc:
                params["hidden"] = tuple(mc["hidden"])
            section = {
                "params": params,
                "n_features_in": int(np.prod(mc["input_shape"])),
                "feature_names_in": None,
                "sample_shape": list(mc["input_shape"]),
                "scaling": None,
            }
        params = dict(section["params"])
        if params.get("hidden") is not None:
            params["hidden"] = tuple(params["hidden"])
        if params.get("model_params") is not None:
            params["model_params"] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in params["model_params"].items()
            }
        est = cls(**params)
        device = resolve_device(device if device is not None else est.device)
        model.to(device, memory_format=memory_format(model))  # the layout fit trained in
        load_weights(model, path / "model.safetensors")
        est.model_ = model.eval()
        history = path / "history.json"
        est.history_ = read_json(history) if history.is_file() else []
        est.n_features_in_ = int(section["n_features_in"])
        if section.get("feature_names_in") is not None:
            est.feature_names_in_ = np.asarray(section["feature_names_in"], dtype=object)
        est.sample_shape_ = tuple(section["sample_shape"])
        est.input_shape_ = tuple(model.input_shape)
        scaling = section.get("scaling")
        if scaling is None:
            est.data_min_ = est.data_range_ = None
        else:
            shape = tuple(scaling["shape"])
            est.data_min_ = np.asarray(scaling["data_min"], dtype=np.float64).reshape(shape)
            est.data_range_ = np.asarray(scaling["data_range"], dtype=np.float64).reshape(shape)
        est._train_config = {
            **TrainConfig().to_dict(),
            **{k: v for k, v in train.items() if k in _TRAIN_FIELDS},
        }
        est._n_samples_fit = int(config.get("split", {}).get("n_train", 0))
        return est


_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


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


def _as_int(value: Any) -> Any:
    """numpy integers (from ``np.arange`` grids) as Python ints; anything else unchanged."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def _plain(value: Any) -> Any:
    """JSON-friendly: tuples and arrays as lists, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _seed(random_state: Any) -> int:
    """An integer ``random_state`` is the seed itself (as ``aelab train --seed``)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        check_random_state(int(random_state))  # the same range checks as scikit-learn
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


__all__ = ["Autoencoder"]
