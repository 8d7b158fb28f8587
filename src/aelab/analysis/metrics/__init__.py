"""Metrics on arrays: reconstruction quality, code quality, and the PCA baseline.

Everything here is a pure function of numpy arrays that a caller computed from a trained model;
no model, loader or tensor is ever seen. Images are ``(N, C, H, W)`` float arrays in
``[0, data_range]``, codes are ``(N, latent_dim)`` arrays, labels are ``(N,)`` arrays.

Reconstruction quality
    :func:`mse`, :func:`psnr` (peak signal-to-noise ratio) and :func:`ssim` (structural
    similarity, Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error
    visibility to structural similarity", IEEE TIP 13(4), 2004), the last two computed per image
    with :mod:`skimage.metrics` and averaged; :func:`reconstruction_scores` returns all three;
    :func:`variance_ratio`, how much reconstructions differ from one another (near 0: nearly
    the same image whatever the input).

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

from aelab.analysis.metrics.codes import dead_units, knn_accuracy, max_activation
from aelab.analysis.metrics.pca import PCABaseline, pca_baseline
from aelab.analysis.metrics.reconstruction import (
    PSNR_CAP_DB,
    mse,
    psnr,
    reconstruction_scores,
    ssim,
    variance_ratio,
)

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
    "variance_ratio",
]
