"""Pictures of a code's units and of what a code finds: a unit's page, the stability of units
across seeds, nearest neighbours by code and by pixels, a morph strip and what MSE misses.
Every function takes arrays (:mod:`aelab.analysis.units`, :mod:`aelab.analysis.keeps`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import Rectangle
from numpy.typing import ArrayLike

from .grid import _bare, _draw, _images, _tiles, draw_row, image_grid


def unit_page(
    direction: ArrayLike,
    top: ArrayLike,
    bottom: ArrayLike,
    counts: ArrayLike,
    edges: ArrayLike,
    *,
    title: str,
    figure: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """One unit's page: its decoder direction (diverging colours, zero white), the images that
    activate it most (top row) and least (bottom row), and its activation histogram.

    Parameters
    ----------
    direction : array_like, shape (C, H, W)
    top, bottom : array_like, shape (k, C, H, W)
    counts : array_like, shape (bins,)
    edges : array_like, shape (bins + 1,)
    title : str
    figure : Figure or SubFigure, optional
        Where to draw (a row of :func:`unit_pages`); a new figure when None.
    """
    direction = _images(np.asarray(direction)[None], "direction")[0]
    top, bottom = _images(top, "top"), _images(bottom, "bottom")
    counts, edges = np.asarray(counts, dtype=float), np.asarray(edges, dtype=float)
    k = max(len(top), len(bottom), 1)
    fig = figure if figure is not None else Figure(figsize=(1.1 * (k + 4), 2.6),
                                                   layout="constrained")  # fmt: skip
    grid = fig.add_gridspec(2, k + 4)
    ax = fig.add_subplot(grid[:, :2])
    tile = _tiles(direction[None])[0]
    tile = tile.mean(axis=-1) if tile.ndim == 3 else tile  # colour: the mean over channels
    limit = float(np.abs(tile).max()) or 1.0
    ax.imshow(tile, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title("direction", fontsize=9)
    _bare(ax)
    for row, images, label in ((0, top, "most"), (1, bottom, "least")):
        if len(images):  # one row of images, drawn as one picture: quick to lay out
            ax = fig.add_subplot(grid[row, 2 : 2 + k])
            _draw(ax, _row(images, k), "gray", (0.0, 1.0))
            _bare(ax)
            ax.set_title(f"activate it {label}", fontsize=8, loc="left")
    ax = fig.add_subplot(grid[:, k + 2 :])
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C0")
    ax.set_title("activation", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.set_yticks([])
    ax.locator_params(axis="x", nbins=3)
    fig.suptitle(title, fontsize=10)
    return fig


def _row(images: np.ndarray, k: int) -> np.ndarray:
    """``images`` side by side, a white gap between, white up to ``k`` images."""
    tiles = _tiles(images)
    gap = max(1, tiles.shape[1] // 8)
    pad = [(0, 0), (0, 0), (0, gap)] + [(0, 0)] * (tiles.ndim - 3)
    padded = np.pad(tiles, pad, constant_values=1.0)
    blank = np.ones((k - len(tiles), *padded.shape[1:]))
    row = np.concatenate(list(padded) + list(blank), axis=1)
    return row[:, :-gap]


def unit_pages(pages: Sequence[dict], *, tile: float) -> Figure:
    """Several units' pages (:func:`unit_page`), one under another: each of ``pages`` a dict of
    :func:`unit_page`'s arguments; ``tile`` the side of one image in inches."""
    k = max(max(len(p["top"]), len(p["bottom"])) for p in pages)
    row = 2 * tile + 0.75
    fig = Figure(figsize=(tile * (k + 4), row * len(pages)), layout="constrained")
    for sub, page in zip(np.atleast_1d(fig.subfigures(len(pages), 1)), pages):
        unit_page(**page, figure=sub)
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
    width: float | None = None,
) -> Figure:
    """A held-out image (left) and its nearest held-out neighbours by code (top) and by pixels
    (bottom); a neighbour of the query's own label framed green, another red."""
    query = _images(np.asarray(query)[None], "query")[0]
    rows = (_images(by_code, "by_code"), _images(by_pixels, "by_pixels"))
    k = max(len(rows[0]), len(rows[1]))
    width = 1.1 * (k + 1.5) if width is None else width
    fig = Figure(figsize=(width, 2 * width / (k + 1.5) + 0.8), layout="constrained")
    grid = fig.add_gridspec(2, k + 1)
    ax = fig.add_subplot(grid[:, 0])
    _draw(ax, _tiles(query[None])[0], "gray", (0.0, 1.0))
    ax.set(xticks=[], yticks=[])
    ax.set_title("held-out", fontsize=8)
    for r, (images, hits, label) in enumerate(
        zip(rows, (code_hits, pixel_hits), ("by code", "by pixels"))
    ):
        if not len(images):
            continue
        ax = fig.add_subplot(grid[r, 1:])  # the row as one picture: quick to lay out and draw
        side, gap = draw_row(ax, _tiles(images), "gray", (0.0, 1.0), k)
        ax.set_title(label, fontsize=8, loc="left")
        for j in range(len(images) if hits is not None else 0):
            colour = "#1b7f3b" if hits[j] else "#b3261e"
            ax.add_patch(Rectangle((j * (side + gap), 0), side, side, fill=False, lw=2,
                                   edgecolor=colour, clip_on=False))  # fmt: skip
    fig.suptitle(title, fontsize=10)
    return fig


def strip(
    images: ArrayLike,
    labels: Sequence[str],
    *,
    title: str | None,
    width: float | None = None,
    cols: int | None = None,
    label_lines: int = 1,
) -> Figure:
    """Images side by side (``cols`` a row, all in one when None), each with its label (a
    morph strip; what MSE misses); ``width`` in inches (1.3 an image when None)."""
    images = _images(images, "images")
    cols = len(images) if cols is None else max(1, min(cols, len(images)))
    rows = -(-len(images) // cols)
    width = 1.3 * cols if width is None else width
    side = width / cols
    height = rows * (side + 0.2 * label_lines + 0.1) + (0.35 if title else 0.0)
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(images) :]:
        ax.set_axis_off()
    for ax, image, label in zip(axes, images, labels):
        _draw(ax, _tiles(image[None])[0], "gray", (0.0, 1.0))
        _bare(ax)
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def morph_grid(
    images: ArrayLike,
    rows: Sequence[str],
    columns: Sequence[str],
    *,
    title: str | None,
    width: float | None = None,
) -> Figure:
    """A grid of morphs: row ``i`` one image moved along group ``rows[i]``'s direction, a
    column a step (``columns``: each step's label); ``images`` ``(G, S, C, H, W)``. A group's
    name is drawn as written (no mathtext: ``$`` is a dollar), cut to 18 characters. One
    :func:`aelab.plots.image_grid`: a row of images is one picture."""
    images = np.asarray(images)
    if images.ndim != 5 or images.shape[:2] != (len(rows), len(columns)):
        raise ValueError(
            f"images have shape {images.shape}; expected ({len(rows)}, {len(columns)}, C, H, W)"
        )
    s = images.shape[1]
    width = 1.1 * (s + 1) if width is None else width
    labels = [r if len(r) <= 18 else r[:17] + "…" for r in map(str, rows)]
    return image_grid(list(images), row_titles=labels, col_titles=[str(c) for c in columns],
                      title=title, tile_size=width / (s + 1), max_width=width)  # fmt: skip


__all__ = ["morph_grid", "neighbours", "stability_histogram", "strip", "unit_page", "unit_pages"]
