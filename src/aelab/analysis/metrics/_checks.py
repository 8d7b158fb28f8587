"""Input checks shared by the metrics: one clear error naming the argument."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _array(a: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; only finite values are allowed")
    return arr


def _images(a: ArrayLike, name: str) -> np.ndarray:
    arr = _array(a, name)
    if arr.ndim != 4:
        raise ValueError(f"{name} must be images of shape (N, C, H, W), got shape {arr.shape}")
    return arr


def _pair(x: ArrayLike, x_hat: ArrayLike, *, images: bool) -> tuple[np.ndarray, np.ndarray]:
    check = _images if images else _array
    x, x_hat = check(x, "x"), check(x_hat, "x_hat")
    if x.shape != x_hat.shape:
        raise ValueError(f"x_hat has shape {x_hat.shape}; it must match x's shape {x.shape}")
    return x, x_hat


def _codes(a: ArrayLike, name: str = "codes") -> np.ndarray:
    arr = _array(a, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, latent_dim), got shape {arr.shape}")
    return arr


def _labels(a: ArrayLike, n: int, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got shape {arr.shape}")
    return arr


def _data_range(data_range: float) -> float:
    value = float(data_range)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"data_range must be a finite number > 0, got {data_range!r}")
    return value


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)
