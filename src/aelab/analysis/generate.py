"""Latent-space sampling: new codes to decode into new images, in pure numpy.

The workshop notebook generated faces from a trained autoencoder in two ways, both reproduced
here as functions of the codes of a data set (the caller decodes the result):

* :func:`random_codes`, the notebook's "approach 1": every latent unit drawn independently from
  an arcsine (Beta(0.5, 0.5)) distribution stretched over part of the range the unit takes on
  the data.
* :func:`pca_codes`, "approach 2": a Gaussian in the principal components of the codes, so that
  generated codes follow the correlations between units.

Plus the grids for pictures of the latent space: :func:`interpolate` (a straight line between two
codes), :func:`manifold_grid` (the regular 2-D grid through which a two-unit variational
autoencoder's decoder is drawn, Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014;
laid out as in the Keras example ``examples/variational_autoencoder.py``) and
:func:`code_image_shape` (how to draw a code vector as a small image).

Random choices take ``random_state``: an int seed, a :class:`numpy.random.Generator`, or None,
passed to :func:`numpy.random.default_rng`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from sklearn.decomposition import PCA

__all__ = ["code_image_shape", "interpolate", "manifold_grid", "pca_codes", "random_codes"]

RandomState = int | np.random.Generator | None


def _codes(codes: ArrayLike, min_rows: int = 1) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.ndim != 2 or arr.shape[0] < min_rows or arr.shape[1] < 1:
        raise ValueError(
            f"codes must have shape (N, latent_dim) with N >= {min_rows}, got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise ValueError("codes must hold finite numbers (no NaN or inf)")
    return arr


def _count(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _scale(value: float) -> float:
    scale = float(value)
    if not np.isfinite(scale) or scale < 0:
        raise ValueError(f"scale must be a finite number >= 0, got {value!r}")
    return scale


def _float_dtype(arr: np.ndarray) -> np.dtype:
    return arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.dtype(np.float64)


def random_codes(
    codes: ArrayLike, n: int, *, scale: float = 0.75, random_state: RandomState = None
) -> np.ndarray:
    """Draw codes unit by unit inside the range each unit takes on the data ("approach 1").

    Each unit ``j`` is drawn independently as ``lo_j + B * (hi_j - lo_j) * scale`` with
    ``B ~ Beta(0.5, 0.5)`` and ``lo_j``, ``hi_j`` the unit's minimum and maximum over ``codes``.
    The notebook drew ``Beta(0.5, 0.5) * max_j * 0.75``, i.e. ``lo_j = 0``; for ReLU codes the
    minimum is 0 (or above), so this is the same there, and it stays inside the observed range for
    codes that can be negative (tanh, linear).

    Parameters
    ----------
    codes : array_like, shape (N, D)
        Codes of a data set (usually the training set).
    n : int
        Number of codes to draw.
    scale : float, default 0.75
        Fraction of each unit's range that is used (the notebook's 0.75).
    random_state : int, numpy.random.Generator or None
        Seed or generator.

    Returns
    -------
    numpy.ndarray, shape (n, D)
        The drawn codes, in ``codes``' floating dtype (float64 for integer codes).
    """
    codes = _codes(codes)
    n = _count(n, "n", 1)
    scale = _scale(scale)
    rng = np.random.default_rng(random_state)
    lo = codes.min(axis=0).astype(np.float64)
    hi = codes.max(axis=0).astype(np.float64)
    b = rng.beta(0.5, 0.5, size=(n, codes.shape[1]))
    return (lo + b * (hi - lo) * scale).astype(_float_dtype(codes))


def pca_codes(
    codes: ArrayLike,
    n: int,
    *,
    n_components: int = 16,
    scale: float = 1.0,
    random_state: RandomState = None,
) -> tuple[np.ndarray, PCA]:
    """Draw codes from a Gaussian in the principal components of the codes ("approach 2").

    A PCA is fitted on ``codes`` with ``n_components`` components (capped at
    ``min(N, D)``); each sample has independent Gaussian coordinates with variance
    ``scale**2 * explained_variance_`` on the components and is mapped back to a code with
    ``inverse_transform`` (so it lies in the span of the components around the mean code). The
    notebook drew every coordinate with standard deviation 2 whatever the component's variance,
    which over-stretches the weak components and under-samples the strong ones; scaling by each
    component's own spread keeps the samples where the data is.

    Parameters
    ----------
    codes : array_like, shape (N, D)
        Codes of a data set, N >= 2.
    n : int
        Number of codes to draw.
    n_components : int, default 16
        Components to keep (at most ``min(N, D)`` are used).
    scale : float, default 1.0
        Standard deviations per component, in units of that component's own standard deviation.
    random_state : int, numpy.random.Generator or None
        Seed or generator.

    Returns
    -------
    samples : numpy.ndarray, shape (n, D)
        The drawn codes, in ``codes``' floating dtype (float64 for integer codes).
    pca : sklearn.decomposition.PCA
        The PCA fitted on ``codes``.
    """
    codes = _codes(codes, min_rows=2)
    n = _count(n, "n", 1)
    n_components = _count(n_components, "n_components", 1)
    scale = _scale(scale)
    rng = np.random.default_rng(random_state)
    kept = min(n_components, *codes.shape)
    pca = PCA(n_components=kept, svd_solver="full").fit(codes.astype(np.float64))
    coords = rng.standard_normal((n, kept)) * (scale * np.sqrt(pca.explained_variance_))
    return pca.inverse_transform(coords).astype(_float_dtype(codes)), pca


def interpolate(z_a: ArrayLike, z_b: ArrayLike, steps: int = 8) -> np.ndarray:
    """Codes on the straight line from ``z_a`` to ``z_b``, both endpoints included.

    Parameters
    ----------
    z_a, z_b : array_like, shape (D,) or (1, D)
        The two end codes.
    steps : int, default 8
        Number of codes, >= 2; the first is ``z_a`` and the last ``z_b`` exactly.

    Returns
    -------
    numpy.ndarray, shape (steps, D)
        ``(1 - t) z_a + t z_b`` for ``t`` evenly spaced over ``[0, 1]``.
    """
    ends = []
    for name, z in (("z_a", z_a), ("z_b", z_b)):
        arr = np.asarray(z)
        if arr.ndim == 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{name} must be one code of shape (D,) or (1, D), got {arr.shape}")
        ends.append(arr)
    a, b = ends
    if a.shape != b.shape:
        raise ValueError(f"z_b has shape {b.shape}; it must match z_a's shape {a.shape}")
    steps = _count(steps, "steps", 2)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    dtype = np.result_type(_float_dtype(a), _float_dtype(b))
    return ((1.0 - t) * a + t * b).astype(dtype)


def manifold_grid(
    n: int = 15,
    limit: float | None = None,
    *,
    codes: ArrayLike | None = None,
    quantiles: tuple[float, float] = (0.01, 0.99),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The regular grid of 2-D codes through which a two-unit VAE decoder is drawn.

    As in the notebook (and the Keras example ``examples/variational_autoencoder.py``):
    ``xs`` ascending left to right and ``ys`` descending top to bottom, so the decoded images
    stitched row by row show ``z[1]`` increasing upwards like a plot. The notebook's grid spans
    ``[-4, 4]`` on both axes (``limit=4``, the default without ``codes``); a trained VAE's codes
    often fill only part of that square, and the rest decodes to what no image looks like, so
    given ``codes`` each axis spans their ``quantiles`` instead: the region the images occupy.

    Parameters
    ----------
    n : int, default 15
        Points per axis, >= 2.
    limit : float, optional
        The grid spans ``[-limit, limit]`` on both axes (in units of the prior's standard
        deviation); default 4.0 without ``codes``. Not with ``codes``.
    codes : array_like, shape (N, 2), optional
        Codes of images (a VAE's posterior means): each axis spans their ``quantiles``.
    quantiles : (float, float), default (0.01, 0.99)
        The lower and upper quantile of ``codes`` on each axis.

    Returns
    -------
    grid : numpy.ndarray, shape (n * n, 2)
        Row-major codes: ``grid[i * n + j] == (xs[j], ys[i])``.
    xs : numpy.ndarray, shape (n,)
        Column coordinates (``z[0]``), ascending.
    ys : numpy.ndarray, shape (n,)
        Row coordinates (``z[1]``), descending.
    """
    n = _count(n, "n", 2)
    if codes is not None:
        if limit is not None:
            raise ValueError(
                f"limit={limit!r} and codes are not valid together; give limit for the "
                "notebook's square [-limit, limit]^2 or codes for their observed range"
            )
        z = _codes(codes, min_rows=2)
        if z.shape[1] != 2:
            raise ValueError(f"codes must have shape (N, 2), got shape {z.shape}")
        q_lo, q_hi = (float(q) for q in quantiles)
        if not 0 <= q_lo < q_hi <= 1:
            raise ValueError(
                f"quantiles={quantiles!r} is not valid; expected (lo, hi) with 0 <= lo < hi <= 1"
            )
        lo, hi = np.quantile(z.astype(np.float64), [q_lo, q_hi], axis=0)
        half = np.maximum((hi - lo) / 2, 1e-3)  # a unit that never moves still gets a span
        mid = (lo + hi) / 2
        lo, hi = mid - half, mid + half
        xs = np.linspace(lo[0], hi[0], n)
        ys = np.linspace(lo[1], hi[1], n)[::-1].copy()
    else:
        value = 4.0 if limit is None else float(limit)
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"limit must be a finite number > 0, got {limit!r}")
        xs = np.linspace(-value, value, n)
        ys = xs[::-1].copy()
    grid = np.stack([np.tile(xs, n), np.repeat(ys, n)], axis=1)
    return grid, xs, ys


def code_image_shape(latent_dim: int) -> tuple[int, int]:
    """The most square ``(h, w)`` with ``h * w == latent_dim`` and ``h <= w``.

    Used to draw a code vector as a small image: 100 -> (10, 10), 20 -> (4, 5), 32 -> (4, 8),
    2 -> (1, 2), a prime 7 -> (1, 7).

    Parameters
    ----------
    latent_dim : int
        Length of the code, >= 1.

    Returns
    -------
    tuple of int
        ``(h, w)``.
    """
    latent_dim = _count(latent_dim, "latent_dim", 1)
    h = next(d for d in range(math.isqrt(latent_dim), 0, -1) if latent_dim % d == 0)
    return h, latent_dim // h
