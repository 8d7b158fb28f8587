"""Pictures of a code's units and of what a code finds: a unit's page, the stability of units
across seeds, nearest neighbours by code and by pixels, a morph strip and what MSE misses.
Every function takes arrays (:mod:`aelab.analysis.units`, :mod:`aelab.analysis.keeps`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from .grid import _bare, _draw, _images, _tiles


def unit_page(
    direction: ArrayLike,
    top: ArrayLike,
    bottom: ArrayLike,
    counts: ArrayLike,
    edges: ArrayLike,
    *,
    title: str,
) -> Figure:
    """One unit's page: its decoder direction (diverging colours, zero white), the images that
    activate it most (top row) and least (bottom row), and its activation histogram.

    Parameters
    ----------
    direction : array_like, shape (C, H, W)
    top, bottom : array_like, shape (k, C, H, W)
    counts : array_like, shape (bins,)
    edges : array_like, shape (bins + 1,)
    title : str
    """
    direction = _images(np.asarray(direction)[None], "direction")[0]
    top, bottom = _images(top, "top"), _images(bottom, "bottom")
    counts, edges = np.asarray(counts, dtype=float), np.asarray(edges, dtype=float)
    k = max(len(top), len(bottom), 1)
    fig = Figure(figsize=(1.1 * (k + 4), 2.6), layout="constrained")
    grid = fig.add_gridspec(2, k + 4)
    ax = fig.add_subplot(grid[:, :2])
    tile = _tiles(direction[None])[0]
    tile = tile.mean(axis=-1) if tile.ndim == 3 else tile  # colour: the mean over channels
    limit = float(np.abs(tile).max()) or 1.0
    ax.imshow(tile, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title("direction", fontsize=9)
    _bare(ax)
    for row, images, label in ((0, top, "most"), (1, bottom, "least")):
        for j, image in enumerate(images):
            ax = fig.add_subplot(grid[row, 2 + j])
            _draw(ax, _tiles(image[None])[0], "gray", (0.0, 1.0))
            if j == 0:
                ax.set_title(f"activate it {label}", fontsize=8, loc="left")
    ax = fig.add_subplot(grid[:, k + 2 :])
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C0")
    ax.set_title("activation (held-out)", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def stability_histogram(
    model: ArrayLike, pca: ArrayLike, *, seeds: int, title: str = "Units across seeds"
) -> Figure:
    """Histograms of each unit's matched similarity across seeds, beside PCA's components'
    across bootstrap resamples of the training images."""
    fig = Figure(figsize=(5.0, 3.0), layout="constrained")
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 21)
    ax.hist(np.asarray(model, dtype=float), bins=bins, alpha=0.7, label=f"units, {seeds} seeds")
    ax.hist(np.asarray(pca, dtype=float), bins=bins, alpha=0.7, label="PCA, bootstrap")
    ax.set_xlabel("matched |cosine similarity|")
    ax.set_ylabel("units")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


def neighbours(
    query: ArrayLike,
    by_code: ArrayLike,
    by_pixels: ArrayLike,
    *,
    title: str,
    code_hits: Sequence[bool] | None = None,
    pixel_hits: Sequence[bool] | None = None,
) -> Figure:
    """A held-out image (left) and its nearest held-out neighbours by code (top) and by pixels
    (bottom); a neighbour of the query's own label framed green, another red."""
    query = _images(np.asarray(query)[None], "query")[0]
    rows = (_images(by_code, "by_code"), _images(by_pixels, "by_pixels"))
    k = max(len(rows[0]), len(rows[1]))
    fig = Figure(figsize=(1.1 * (k + 1.5), 2.6), layout="constrained")
    grid = fig.add_gridspec(2, k + 1)
    ax = fig.add_subplot(grid[:, 0])
    _draw(ax, _tiles(query[None])[0], "gray", (0.0, 1.0))
    ax.set_title("held-out", fontsize=8)
    for r, (images, hits, label) in enumerate(
        zip(rows, (code_hits, pixel_hits), ("by code", "by pixels"))
    ):
        for j, image in enumerate(images):
            ax = fig.add_subplot(grid[r, 1 + j])
            _draw(ax, _tiles(image[None])[0], "gray", (0.0, 1.0))
            if hits is not None:
                for spine in ax.spines.values():
                    spine.set(visible=True, color="#1b7f3b" if hits[j] else "#b3261e", lw=2)
            if j == 0:
                ax.set_title(label, fontsize=8, loc="left")
    fig.suptitle(title, fontsize=10)
    return fig


def strip(images: ArrayLike, labels: Sequence[str], *, title: str) -> Figure:
    """Images side by side, each with its label (a morph strip; what MSE misses)."""
    images = _images(images, "images")
    fig = Figure(figsize=(1.3 * len(images), 1.9), layout="constrained")
    axes = fig.subplots(1, len(images), squeeze=False)[0]
    for ax, image, label in zip(axes, images, labels):
        _draw(ax, _tiles(image[None])[0], "gray", (0.0, 1.0))
        ax.set_title(label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


__all__ = ["neighbours", "stability_histogram", "strip", "unit_page"]
