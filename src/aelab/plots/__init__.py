"""Figures from arrays: the workshop notebook's pictures of autoencoders, plus PCA comparisons.

Every function takes numpy arrays that the caller computed from a trained model (images, codes,
weights, histories) and returns a :class:`matplotlib.figure.Figure`; nothing here sees a model.
Figures are built with ``Figure(...)`` directly, never through :mod:`matplotlib.pyplot`, so no
GUI backend or global state (rcParams, the pyplot figure list) is used or changed; write one
with :func:`save`.

All pictures made of image tiles go through one function, :func:`image_grid`: training images,
reconstructions, codes drawn as small images, weights, denoising, interpolations and generated
images. :func:`manifold` draws the decoded 2-D latent grid of a variational autoencoder as one
stitched image with coordinate ticks (as in the Keras example
``examples/variational_autoencoder.py``, after Kingma & Welling, "Auto-Encoding Variational
Bayes", ICLR 2014) and shares the tile drawing code. The scatter
figures (:func:`embedding_panels` for PCA and t-SNE maps, van der Maaten & Hinton, "Visualizing
Data using t-SNE", JMLR 9, 2008; :func:`latent_scatter`) share one scatter helper.

Conventions: images are ``(N, C, H, W)`` (or ``(N, H, W)``) with C = 1 drawn in grey and C = 3
as RGB; images are shown on the fixed range ``[0, 1]``, weights and codes each on their own
range.
"""

from .charts import activation_bars, embedding_panels, latent_scatter, learning_curves
from .curves import pca_ratio, robustness, score_histograms
from .grid import image_grid, png_bytes, save
from .images import (
    codes_and_reconstructions,
    denoising_panel,
    generated,
    interpolation,
    manifold,
    weight_tiles,
)
from .maps import anomaly_gallery, outlined, significance_rgb
from .render import pngs

__all__ = [
    "activation_bars",
    "anomaly_gallery",
    "codes_and_reconstructions",
    "denoising_panel",
    "embedding_panels",
    "generated",
    "image_grid",
    "interpolation",
    "latent_scatter",
    "learning_curves",
    "manifold",
    "outlined",
    "pca_ratio",
    "png_bytes",
    "pngs",
    "robustness",
    "save",
    "score_histograms",
    "significance_rgb",
    "weight_tiles",
]
