"""Metrics on arrays: reconstruction quality, code quality, and the PCA baseline.

Everything here is a pure function of numpy arrays that a caller computed from a trained model;
no model, loader or tensor is ever seen. Images are ``(N, C, H, W)`` float arrays in
``[0, data_range]``, codes are ``(N, latent_dim)`` arrays, labels are ``(N,)`` arrays.

Reconstruction quality
    :func:`mse`, :func:`psnr` (peak signal-to-noise ratio) and :func:`ssim` (structural
    similarity, Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error
    visibility to structural similarity", IEEE TIP 13(4), 2004), the last two computed per image
    with :mod:`skimage.metrics` and averaged; :func:`reconstruction_scores` returns all three.

Code quality
    :func:`knn_accuracy`, the k-nearest-neighbour label accuracy of the codes (Cover & Hart,
    "Nearest neighbor pattern classification", IEEE TIT 13(1), 1967), either against a labelled
    reference set or leave-one-out within one set; :func:`dead_units` and :func:`max_activation`
    for units that never vary (the notebook's bar chart of maximum activations).

Baseline
    :func:`pca_baseline`: principal component analysis (Pearson 1901; Hotelling 1933) with as
    many components as the autoencoder has latent units, the linear autoencoder every model is
    compared against.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

__all__ = [
    "PSNR_CAP_DB",
    "PCABaseline",
    "dead_units",
    "knn_accuracy",
    "max_activation",
    "mse",
    "pca_baseline",
    "psnr",
    "reconstruction_scores",
    "ssim",
]

#: PSNR (dB) given to an image reconstructed exactly, and the most any one image contributes.
PSNR_CAP_DB = 100.0

_SSIM_MAX_WIN = 7


# --- validation ---------------------------------------------------------------------------------


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


# --- reconstruction -----------------------------------------------------------------------------


def mse(x: ArrayLike, x_hat: ArrayLike) -> float:
    """Mean squared error per pixel over all images, channels and pixels.

    Parameters
    ----------
    x, x_hat : array_like
        Originals and reconstructions, any equal shapes (usually ``(N, C, H, W)``).

    Returns
    -------
    float
        ``mean((x - x_hat) ** 2)``, accumulated in float64.
    """
    x, x_hat = _pair(x, x_hat, images=False)
    diff = x.astype(np.float64) - x_hat.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr(x: ArrayLike, x_hat: ArrayLike, data_range: float = 1.0) -> float:
    """Mean over images of the per-image peak signal-to-noise ratio, in dB.

    Each image's PSNR is ``10 log10(data_range**2 / mse_i)``
    (:func:`skimage.metrics.peak_signal_noise_ratio`). An image reconstructed exactly
    (``mse_i == 0``) would give ``inf`` and make the mean meaningless, so every per-image value is
    capped at :data:`PSNR_CAP_DB` (100 dB, an error of 1e-5 of the range) before averaging.

    Parameters
    ----------
    x, x_hat : array_like
        Originals and reconstructions, shape ``(N, C, H, W)``.
    data_range : float, default 1.0
        The images' value range (1.0 for images in ``[0, 1]``).

    Returns
    -------
    float
        The mean PSNR in dB, at most :data:`PSNR_CAP_DB`.
    """
    x, x_hat = _pair(x, x_hat, images=True)
    data_range = _data_range(data_range)
    values = []
    for a, b in zip(x.astype(np.float64), x_hat.astype(np.float64), strict=True):
        if np.mean((a - b) ** 2) == 0.0:
            values.append(PSNR_CAP_DB)
        else:
            value = peak_signal_noise_ratio(a, b, data_range=data_range)
            values.append(min(float(value), PSNR_CAP_DB))
    return float(np.mean(values))


def _ssim_win_size(h: int, w: int) -> int:
    """The largest odd window <= min(h, w), at most 7 (skimage's default)."""
    side = min(h, w, _SSIM_MAX_WIN)
    return side if side % 2 == 1 else side - 1


def ssim(x: ArrayLike, x_hat: ArrayLike, data_range: float = 1.0) -> float:
    """Mean over images of the structural similarity index (Wang et al. 2004).

    Computed per image with :func:`skimage.metrics.structural_similarity` (uniform window,
    ``channel_axis`` over C for colour images). The window is skimage's default 7 pixels, shrunk
    to the largest odd size that fits ``min(H, W)`` so that 8x8 digits (window 7) and smaller
    images work.

    Parameters
    ----------
    x, x_hat : array_like
        Originals and reconstructions, shape ``(N, C, H, W)`` with ``min(H, W) >= 3``.
    data_range : float, default 1.0
        The images' value range.

    Returns
    -------
    float
        The mean SSIM, in ``[-1, 1]``; 1 for identical images.
    """
    x, x_hat = _pair(x, x_hat, images=True)
    data_range = _data_range(data_range)
    _, c, h, w = x.shape
    if min(h, w) < 3:
        raise ValueError(f"ssim needs images at least 3x3, got x of shape {x.shape}")
    win_size = _ssim_win_size(h, w)
    values = []
    for a, b in zip(x.astype(np.float64), x_hat.astype(np.float64), strict=True):
        if c == 1:
            value = structural_similarity(a[0], b[0], win_size=win_size, data_range=data_range)
        else:
            value = structural_similarity(
                a, b, win_size=win_size, data_range=data_range, channel_axis=0
            )
        values.append(float(value))
    return float(np.mean(values))


def reconstruction_scores(x: ArrayLike, x_hat: ArrayLike, data_range: float = 1.0) -> dict:
    """MSE, PSNR and SSIM of reconstructions in one dictionary.

    Parameters
    ----------
    x, x_hat : array_like
        Originals and reconstructions, shape ``(N, C, H, W)``.
    data_range : float, default 1.0
        The images' value range, passed to :func:`psnr` and :func:`ssim`.

    Returns
    -------
    dict
        ``{"mse": float, "psnr": float, "ssim": float}``.
    """
    x, x_hat = _pair(x, x_hat, images=True)
    return {
        "mse": mse(x, x_hat),
        "psnr": psnr(x, x_hat, data_range),
        "ssim": ssim(x, x_hat, data_range),
    }


# --- codes --------------------------------------------------------------------------------------


def _vote(neighbour_classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority class per row; ties go to the smallest class index (as in sklearn)."""
    n, k = neighbour_classes.shape
    counts = np.zeros((n, n_classes), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(n), k), neighbour_classes.ravel()), 1)
    return counts.argmax(axis=1)


def knn_accuracy(
    codes: ArrayLike,
    labels: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    reference_labels: ArrayLike | None = None,
    groups: ArrayLike | None = None,
    k: int = 1,
) -> float:
    """k-nearest-neighbour label accuracy of codes (Euclidean distance, majority vote).

    Two modes:

    * **With a reference set** (``reference`` and ``reference_labels``): each code is classified
      by its ``k`` nearest neighbours in ``reference`` (e.g. held-out codes against training
      codes). This only makes sense when the held-out labels occur in the reference set.
    * **Leave-one-out** (no reference): each code is classified by its ``k`` nearest neighbours
      among the *other* codes of the same array; a point is never its own neighbour, even when
      it has exact duplicates. With ``groups``, neighbours that share the query's group are
      excluded as well (an image and its mirror image share a group and must not vote for each
      other). This is how a held-out set of people never seen in training is scored: their
      labels are absent from the training set, so train->test kNN cannot be right by design,
      while leave-one-out within the held-out codes asks whether the encoder puts other images
      of the same unseen person close together.

    Ties in the vote go to the smallest label, as in
    :class:`sklearn.neighbors.KNeighborsClassifier`; ties in distance are broken by
    :class:`sklearn.neighbors.NearestNeighbors`' order.

    Parameters
    ----------
    codes : array_like, shape (N, D)
        The codes to classify.
    labels : array_like, shape (N,)
        Their true labels.
    reference, reference_labels : array_like, shape (M, D) and (M,), optional
        A labelled reference set; give both or neither.
    groups : array_like, shape (N,), optional
        Group ids for leave-one-out; neighbours in the query's group are skipped. Not allowed
        with a reference set.
    k : int, default 1
        Number of neighbours that vote.

    Returns
    -------
    float
        The fraction of codes whose predicted label equals their label.
    """
    codes = _codes(codes)
    n = codes.shape[0]
    labels = _labels(labels, n, "labels")
    k = _positive_int(k, "k")
    if (reference is None) != (reference_labels is None):
        raise ValueError(
            "reference and reference_labels must be given together, got only "
            + ("reference" if reference is not None else "reference_labels")
        )

    if reference is not None:
        if groups is not None:
            raise ValueError("groups is only allowed for leave-one-out, not with a reference set")
        ref = _codes(reference, "reference")
        if ref.shape[1] != codes.shape[1]:
            raise ValueError(
                f"reference has {ref.shape[1]} columns; it must match codes' {codes.shape[1]}"
            )
        ref_labels = _labels(reference_labels, ref.shape[0], "reference_labels")
        if k > ref.shape[0]:
            raise ValueError(f"k={k} is larger than the reference set ({ref.shape[0]} points)")
        classes, ref_classes = np.unique(ref_labels, return_inverse=True)
        index = NearestNeighbors(n_neighbors=k).fit(ref)
        neighbours = index.kneighbors(codes, return_distance=False)
        predicted = classes[_vote(ref_classes[neighbours], classes.size)]
        return float(np.mean(predicted == labels))

    if groups is None:
        group_ids = np.arange(n)
    else:
        _, group_ids = np.unique(_labels(groups, n, "groups"), return_inverse=True)
    group_sizes = np.bincount(group_ids)
    largest = int(group_sizes.max())
    if n - largest < k:
        raise ValueError(
            f"k={k} needs at least {k} points outside each query's group (and itself); "
            f"with {n} codes and a largest group of {largest} only {n - largest} remain"
        )
    classes, classes_of = np.unique(labels, return_inverse=True)
    index = NearestNeighbors(n_neighbors=min(n, k + largest)).fit(codes)
    candidates = index.kneighbors(codes, return_distance=False)
    allowed = group_ids[candidates] != group_ids[:, None]
    # Columns of the first k allowed candidates, nearest first (a stable sort keeps the order).
    first = np.argsort(~allowed, axis=1, kind="stable")[:, :k]
    neighbours = np.take_along_axis(candidates, first, axis=1)
    predicted = _vote(classes_of[neighbours], classes.size)
    return float(np.mean(predicted == classes_of))


def dead_units(codes: ArrayLike, tol: float = 1e-6) -> np.ndarray:
    """Which latent units never vary over the data.

    A unit is dead when ``max - min <= tol`` over all codes: a ReLU unit that is always 0, a
    sigmoid unit saturated at 0 or 1, any unit stuck at a constant. It carries no information
    about the input.

    Parameters
    ----------
    codes : array_like, shape (N, D)
        Codes of a data set.
    tol : float, default 1e-6
        Largest spread still counted as constant.

    Returns
    -------
    numpy.ndarray of bool, shape (D,)
        True for dead units.
    """
    codes = _codes(codes)
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    spread = codes.max(axis=0).astype(np.float64) - codes.min(axis=0).astype(np.float64)
    return spread <= tol


def max_activation(codes: ArrayLike) -> np.ndarray:
    """The largest value each latent unit takes over the data (the notebook's bar chart).

    Parameters
    ----------
    codes : array_like, shape (N, D)
        Codes of a data set.

    Returns
    -------
    numpy.ndarray, shape (D,)
        Per-unit maximum.
    """
    return _codes(codes).max(axis=0)


# --- PCA baseline -------------------------------------------------------------------------------


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
