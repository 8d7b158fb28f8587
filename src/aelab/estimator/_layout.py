"""How the estimator's samples become the model's ``(n, C, H, W)`` batches and back: the checks
of what a user passes, layouts of tables and images, and the min-max scaling into the range the
model's output layer produces."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

SCALES = ("auto", "minmax", None)
DATA_FORMATS = ("channels_last", "channels_first")

# What each output activation can produce; ``scale`` keeps the training targets inside it.
# The others (``None``: linear, ``leaky_relu``) are unbounded.
OUTPUT_RANGES: dict[str, tuple[float, float]] = {
    "sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "relu": (0.0, np.inf),
    "elu": (-1.0, np.inf),
    "gelu": (-0.1699, np.inf),  # x * Phi(x) has its minimum -0.16997 at x = -0.7518
}


def output_range(activation: str | None) -> tuple[float, float]:
    """The values an output layer ending in ``activation`` can produce."""
    return OUTPUT_RANGES.get(activation, (-np.inf, np.inf))


def input_shape(sample_shape: tuple[int, ...], data_format: str) -> tuple[int, int, int]:
    """``(C, H, W)`` for samples of ``sample_shape``: a table row of n values is ``(1, 1, n)``."""
    if len(sample_shape) == 1:
        return (1, 1, sample_shape[0])
    if len(sample_shape) == 2:  # (H, W): grayscale
        return (1, *sample_shape)
    if data_format == "channels_last":
        h, w, c = sample_shape
        return (c, h, w)
    return tuple(sample_shape)


def channel_axes(ndim: int, data_format: str) -> tuple[int, ...]:
    """Axes of a batch ``(n, *sample_shape)`` that the scaling reduces over."""
    if ndim == 2:
        return (0,)  # per feature
    if ndim == 4 and data_format == "channels_last":
        return (0, 1, 2)  # per channel
    if ndim == 4:
        return (0, 2, 3)
    return (0, 1, 2)  # (n, H, W): one channel


def fit_minmax(X: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(data_min, data_range)`` that map ``X`` onto [0, 1] over ``axes``; a constant feature
    maps to 0.5, the middle, and is restored exactly."""
    data_min = X.min(axis=axes, keepdims=True).astype(np.float64)[0]
    data_range = X.max(axis=axes, keepdims=True).astype(np.float64)[0] - data_min
    constant = data_range == 0
    data_range[constant] = 1.0
    data_min[constant] -= 0.5
    return data_min, data_range


def to_batch(
    X: np.ndarray,
    input_shape: tuple[int, ...],
    data_format: str,
    scaling: tuple[np.ndarray, np.ndarray] | None,
    dtype=np.float32,
) -> torch.Tensor:
    """Samples -> scaled ``(n, C, H, W)`` of ``dtype``."""
    if scaling is not None:
        X = (X - scaling[0]) / scaling[1]
    X = np.asarray(X, dtype=dtype)
    if X.ndim == 4 and data_format == "channels_last":
        X = X.transpose(0, 3, 1, 2)
    return torch.tensor(np.ascontiguousarray(X)).reshape(len(X), *input_shape)


def from_batch(
    x: torch.Tensor,
    sample_shape: tuple[int, ...],
    data_format: str,
    scaling: tuple[np.ndarray, np.ndarray] | None,
    dtype,
) -> np.ndarray:
    """Model output ``(n, C, H, W)`` -> unscaled samples of ``sample_shape``."""
    x = x.numpy()
    if len(sample_shape) == 3 and data_format == "channels_last":
        x = x.transpose(0, 2, 3, 1)
    x = x.reshape(len(x), *sample_shape).astype(dtype)
    if scaling is not None:
        x = (x * scaling[1] + scaling[0]).astype(dtype)
    return x


def as_int(value: Any) -> Any:
    """numpy integers (from ``np.arange`` grids) as Python ints; anything else unchanged."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def plain(value: Any) -> Any:
    """JSON-friendly: tuples and arrays as lists, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list, np.ndarray)):
        return [plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def seed_of(random_state: Any) -> int:
    """An integer ``random_state`` is the seed itself (as ``aelab train --seed``)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        check_random_state(int(random_state))  # the same range checks as scikit-learn
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def validate_data(estimator, X, **kwargs):
        return estimator._validate_data(X, **kwargs)


SAMPLES = "(n_samples, n_features), (n, H, W) or (n, H, W, C)"
ONE_SAMPLE = "X.reshape(-1, 1) for one feature, X.reshape(1, -1) for one sample"
CHANNELS = 4  # at most this many channels look like an image's (grey, grey+alpha, RGB, RGBA)


def _check_ndim(X: Any, low: int, high: int, expected: str, one: str) -> None:
    """One line for an ``X`` of too few or too many axes (scikit-learn's own message for a 1-D
    ``X`` is three lines and prints the whole array); ``one`` says how to reshape a 1-D one."""
    try:
        shape = tuple(np.shape(X))
    except (TypeError, ValueError):  # ragged: check_array says so
        return
    if not low <= len(shape) <= high:
        reshape = f". Reshape your data: {one}" if len(shape) == 1 else ""
        raise ValueError(f"X has shape {shape}; expected {expected}{reshape}")


def _check_channels(X: np.ndarray, data_format: str) -> None:
    """Refuse images whose channel axis is plainly on the other side: ``(n, 1, 28, 28)`` under
    ``channels_last`` would be 28 channels of 1x28 images (aelab's own ``ImageSet.images`` are
    ``(n, C, H, W)``), ``(n, 28, 28, 3)`` under ``channels_first`` 28 channels of 28x3 ones."""
    first, last = X.shape[1], X.shape[3]
    if data_format == "channels_last" and first <= CHANNELS < last:
        h, w, c = X.shape[1:]
        other = "channels_first"
    elif data_format == "channels_first" and last <= CHANNELS < first:
        c, h, w = X.shape[1:]
        other = "channels_last"
    else:
        return
    raise ValueError(
        f"X has shape {X.shape}, which data_format={data_format!r} reads as {c} channels of "
        f"{h}x{w} images; pass data_format={other!r} if its channels are on the other side"
    )


def validate(est: Any, X: Any, *, reset: bool) -> np.ndarray:
    """``X`` as a float32/float64 array of 2 to 4 dimensions, checked against the fit."""
    _check_ndim(X, 2, 4, SAMPLES, ONE_SAMPLE)
    kwargs = {"dtype": [np.float64, np.float32], "allow_nd": True}
    if reset or len(est.sample_shape_) == 1:
        X = validate_data(est, X, reset=reset, **kwargs)
    else:  # images: validate_data would count only the first axis as features
        X = check_array(X, estimator=est, **kwargs)
    if reset:
        if X.ndim == 4:
            _check_channels(X, est.data_format)
        est.n_features_in_ = int(np.prod(X.shape[1:]))
    elif X.shape[1:] != est.sample_shape_:
        raise ValueError(
            f"X has samples of shape {X.shape[1:]}, but {type(est).__name__} was fitted on "
            f"samples of shape {est.sample_shape_}"
        )
    return X


def checked_codes(est: Any, X: Any) -> np.ndarray:
    """Codes ``(n_samples, latent_dim)`` for ``inverse_transform``, checked."""
    check_is_fitted(est)
    latent_dim = est.model_.latent_dim
    _check_ndim(X, 2, 2, f"codes (n_samples, {latent_dim})", "X.reshape(1, -1) for one code")
    Z = check_array(X, dtype=[np.float64, np.float32], estimator=est)
    if Z.shape[1] != latent_dim:
        raise ValueError(
            f"X has {Z.shape[1]} features, but {type(est).__name__} is expecting "
            f"{latent_dim} codes (latent_dim) as input"
        )
    return Z


def checked(est: Any, X: Any) -> np.ndarray:
    """``X`` after fit: validated, and within the range the model takes (``scale=None``)."""
    check_is_fitted(est)
    X = validate(est, X, reset=False)
    if est.scale is None and X.size:
        lo, hi = output_range(est.model_.config.output_activation)
        x_min, x_max = float(X.min()), float(X.max())
        if not (lo <= x_min and x_max <= hi):
            raise ValueError(
                _range_message(est, est.model_.config.output_activation, x_min, x_max, lo, hi)
            )
    return X


def fit_scaling(
    est: Any, X: np.ndarray, activation: str | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(data_min, data_range)`` as ``est.scale`` asks for an output layer ending in
    ``activation`` (both None: no scaling)."""
    lo, hi = output_range(activation)
    x_min, x_max = float(X.min()), float(X.max())
    in_range = lo <= x_min and x_max <= hi
    if est.scale is None and not in_range:
        raise ValueError(_range_message(est, activation, x_min, x_max, lo, hi))
    if est.scale == "minmax" or (est.scale == "auto" and not in_range):
        return fit_minmax(X, channel_axes(X.ndim, est.data_format))
    return None, None


def _range_message(est, act, x_min, x_max, lo, hi) -> str:
    return (
        f"X has values in [{x_min:g}, {x_max:g}], but model={est.model!r} ends in "
        f"{act or 'a linear layer'} and reconstructs only values in [{lo:g}, {hi:g}]; "
        f"rescale X into that range or pass scale='auto' (a min-max scaling learned at fit)"
    )
