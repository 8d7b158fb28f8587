"""Reconstruction quality: MSE, PSNR and SSIM (Wang et al. 2004), per image and averaged."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from skimage.metrics import structural_similarity

from aelab.analysis.metrics._checks import _data_range, _pair

#: PSNR (dB) given to an image reconstructed exactly, and the most any one image contributes.
PSNR_CAP_DB = 100.0

_SSIM_MAX_WIN = 7


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

    Each image's PSNR is ``10 log10(data_range**2 / mse_i)``, as
    :func:`skimage.metrics.peak_signal_noise_ratio` computes it (here for all images at once).
    An image reconstructed exactly (``mse_i == 0``) would give ``inf`` and make the mean
    meaningless, so every per-image value is capped at :data:`PSNR_CAP_DB` (100 dB, an error of
    1e-5 of the range) before averaging.

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
    diff = x.astype(np.float64) - x_hat.astype(np.float64)
    errors = np.mean((diff * diff).reshape(len(diff), -1), axis=1)  # (N,): skimage's mse_i
    with np.errstate(divide="ignore"):  # an exact image: inf, capped below
        values = 10 * np.log10(data_range**2 / errors)
    return float(np.mean(np.minimum(values, PSNR_CAP_DB)))


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


def variance_ratio(x: ArrayLike, x_hat: ArrayLike) -> float:
    """How much reconstructions differ from one another, as a share of how much the originals do.

    The variance across images of each pixel, summed over pixels, of ``x_hat`` over that of
    ``x``: about 1 where the reconstructions differ as the images do, near 0 where the model
    gives nearly the same image (the mean image, say) whatever the input. PCA with ``k``
    components keeps the share its components explain.

    Parameters
    ----------
    x, x_hat : array_like
        Originals and reconstructions, any equal shapes ``(N, ...)``, N >= 2.

    Returns
    -------
    float
        ``sum(var(x_hat, axis=0)) / sum(var(x, axis=0))``; 1.0 where the originals are all
        the same image and so are the reconstructions, inf where only the latter differ.
    """
    x, x_hat = _pair(x, x_hat, images=False)
    if len(x) < 2:
        raise ValueError(f"variance_ratio needs at least 2 images, got {len(x)}")
    total = float(np.var(x.reshape(len(x), -1).astype(np.float64), axis=0).sum())
    kept = float(np.var(x_hat.reshape(len(x_hat), -1).astype(np.float64), axis=0).sum())
    if total == 0:
        return 1.0 if kept == 0 else float("inf")
    return kept / total
