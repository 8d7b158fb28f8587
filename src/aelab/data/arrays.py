"""Images from ``.npy`` / ``.npz`` array files, never unpickled."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .images import ImageSet

ARRAY_EXTENSIONS = (".npy", ".npz")


def _pick(arrays: dict[str, np.ndarray], keys: tuple[str, ...]) -> np.ndarray | None:
    return next((arrays[k] for k in keys if k in arrays), None)


def load_array(path: str | os.PathLike) -> ImageSet:
    """Images from a ``.npy`` or ``.npz`` file (never unpickled).

    Images have shape ``(N, H, W)`` or ``(N, H, W, C)`` with C in {1, 3}, dtype ``uint8``
    (divided by 255) or floats in [0, 1]. A ``.npz`` keeps them under ``images`` (or ``x``/``X``,
    or as its only array), with optional integer ``labels`` (or ``y``) of length N.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ImageSet
    """
    path = Path(path)
    if path.suffix.lower() not in ARRAY_EXTENSIONS:
        raise ValueError(f"{path} is not a .npy or .npz file")
    try:
        if path.suffix.lower() == ".npy":
            arrays = {"images": np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as loaded:
                arrays = {k: loaded[k] for k in loaded.files}
    except Exception as e:
        raise ValueError(f"cannot read {path}: {' '.join(str(e).split())}") from e
    x = _pick(arrays, ("images", "x", "X"))
    if x is None and len(arrays) == 1:
        x = next(iter(arrays.values()))
    if x is None:
        raise ValueError(f"{path} holds {sorted(arrays)}; expected the images under 'images'")
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] in (1, 3))) or len(x) == 0:
        raise ValueError(
            f"{path}: images have shape {x.shape}; expected (N, H, W) or (N, H, W, C), C = 1 or 3"
        )
    allowed = "expected uint8 or floats in [0, 1]"
    if x.dtype == np.uint8:
        images = x.astype(np.float32) / np.float32(255)
    elif np.issubdtype(x.dtype, np.floating):
        bad = int(np.size(x) - np.isfinite(x).sum())
        if bad:
            raise ValueError(f"{path}: {bad} NaN or inf pixel values; {allowed}")
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"{path}: pixels range over [{x.min():g}, {x.max():g}]; {allowed}")
        images = x.astype(np.float32)
    else:
        raise ValueError(f"{path}: images have dtype {x.dtype}; {allowed}")
    images = images[..., None] if images.ndim == 3 else images
    images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    y = _pick(arrays, ("labels", "y"))
    if y is not None:
        if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(images),):
            raise ValueError(
                f"{path}: labels have dtype {y.dtype} and shape {y.shape}; "
                f"expected integers of shape ({len(images)},)"
            )
        y = y.astype(np.int64)
    return ImageSet(images, y, str(path))
