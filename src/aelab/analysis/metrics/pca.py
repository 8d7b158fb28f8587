"""The baseline every autoencoder is measured against: PCA with as many components as its code
(the optimal linear autoencoder)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from sklearn.decomposition import PCA

from aelab.analysis.metrics._checks import _array


class PCABaseline(NamedTuple):
    """A PCA fitted on training images and applied to held-out images.

    Attributes
    ----------
    pca : sklearn.decomposition.PCA
        The fitted PCA (on flattened training images).
    codes_train : numpy.ndarray, shape (n_train, n_components)
        Coordinates of the training images.
    codes_test : numpy.ndarray, shape (n_test, n_components)
        Coordinates of the held-out images.
    x_test_hat : numpy.ndarray
        Reconstructions of the held-out images, in their shape, clipped to ``[0, 1]``.
    """

    pca: PCA
    codes_train: np.ndarray
    codes_test: np.ndarray
    x_test_hat: np.ndarray


def pca_baseline(
    x_train: ArrayLike, x_test: ArrayLike, n_components: int, random_state: int | None = 0
) -> PCABaseline:
    """Fit PCA on training images and reconstruct held-out images with it.

    PCA with ``n_components`` components is the optimal linear autoencoder with that many latent
    units (in squared error, on the training set), so it is the baseline a nonlinear autoencoder
    of the same latent size has to beat on held-out data.

    Parameters
    ----------
    x_train : array_like, shape (n_train, ...)
        Training images, usually ``(n_train, C, H, W)``; flattened per image.
    x_test : array_like, shape (n_test, ...)
        Held-out images with the same per-image shape.
    n_components : int
        Number of components, between 1 and ``min(n_train, n_features)``.
    random_state : int or None, default 0
        Passed to :class:`sklearn.decomposition.PCA` (matters only for its randomized solver).

    Returns
    -------
    PCABaseline
        ``(pca, codes_train, codes_test, x_test_hat)``; ``x_test_hat`` has ``x_test``'s shape and
        floating dtype (float32 for integer input), clipped to ``[0, 1]``.
    """
    x_train, x_test = _array(x_train, "x_train"), _array(x_test, "x_test")
    if x_train.ndim < 2 or x_test.ndim < 2:
        raise ValueError(
            "x_train and x_test must be (N, ...) image arrays, got shapes "
            f"{x_train.shape} and {x_test.shape}"
        )
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"x_test has per-image shape {x_test.shape[1:]}; it must match x_train's "
            f"{x_train.shape[1:]}"
        )
    flat_train = x_train.reshape(x_train.shape[0], -1)
    flat_test = x_test.reshape(x_test.shape[0], -1)
    limit = min(flat_train.shape)
    if (
        isinstance(n_components, bool)
        or not isinstance(n_components, (int, np.integer))
        or not 1 <= n_components <= limit
    ):
        raise ValueError(
            f"n_components={n_components!r} is not allowed: it must be an int from 1 to "
            f"min(n_train, n_features) = {limit}"
        )
    pca = PCA(n_components=int(n_components), random_state=random_state)
    codes_train = pca.fit_transform(flat_train)
    codes_test = pca.transform(flat_test)
    dtype = x_test.dtype if np.issubdtype(x_test.dtype, np.floating) else np.float32
    x_test_hat = np.clip(pca.inverse_transform(codes_test), 0.0, 1.0)
    return PCABaseline(pca, codes_train, codes_test, x_test_hat.reshape(x_test.shape).astype(dtype))
