"""Pictures made of image tiles: weights, codes and reconstructions, denoising, interpolation,
generated images and the VAE's decoded manifold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from .grid import (
    _code_tiles,
    _codes,
    _count,
    _draw,
    _images,
    _numeric,
    _same_length,
    _tiles,
    image_grid,
)
from .style import finish


def weight_tiles(
    w_in: ArrayLike,
    w_out: ArrayLike,
    n: int = 8,
    *,
    title: str | None = "First-layer encoder and last-layer decoder weights",
    cmap: str = "gray",
    max_width: float | None = None,
) -> Figure:
    """The first ``n`` units' weights of the first encoder and last decoder layer, as images.

    Parameters
    ----------
    w_in : array_like, shape (units, C, H, W)
        First encoder layer: the input weights of each unit, in the image's shape.
    w_out : array_like, shape (units, C, H, W)
        Last decoder layer: the output weights of each unit, in the image's shape.
    n : int, default 8
        Tiles per row (fewer if a layer has fewer units).
    title : str or None
        Figure title.
    cmap : str, default "gray"
        Colour map; each tile is drawn on its own range.
    max_width : float, optional
        The most inches the figure may take (:func:`image_grid`'s).

    Returns
    -------
    matplotlib.figure.Figure
        Two rows of tiles.
    """
    n = _count(n, "n")
    w_in, w_out = _images(w_in, "w_in"), _images(w_out, "w_out")
    return image_grid(
        [w_in[:n], w_out[:n]],
        row_titles=["encoder", "decoder"],
        title=title,
        cmap=cmap,
        value_range=None,
        max_width=max_width,
    )


def _rows_with_codes(
    entries: Sequence[tuple[str, str, ArrayLike | None]],
    n: int,
    title: str | None,
    max_width: float | None = None,
) -> Figure:
    """Rows of images with one row of codes among them, via :func:`image_grid`.

    ``entries`` are ``(argument name, row title, array)``; the argument named "codes" holds
    codes, drawn as small images each on its own range, and is left out when None. Images are
    drawn on ``[0, 1]``.
    """
    n = _count(n, "n")
    checked = {
        arg: (_codes(a, arg) if arg == "codes" else _images(a, arg))
        for arg, _, a in entries
        if a is not None
    }
    n = _same_length(n, checked)
    rows = [_code_tiles(a[:n]) if arg == "codes" else a[:n] for arg, a in checked.items()]
    row_titles = [row_title for arg, row_title, _ in entries if arg in checked]
    ranges = [None if arg == "codes" else (0, 1) for arg in checked]
    return image_grid(
        rows, row_titles=row_titles, title=title, value_range=ranges, max_width=max_width
    )


def codes_and_reconstructions(
    x: ArrayLike,
    codes: ArrayLike | None,
    x_hat: ArrayLike,
    n: int = 5,
    *,
    title: str | None = "Originals, codes and reconstructions",
    max_width: float | None = None,
) -> Figure:
    """Originals, their codes drawn as small images, and their reconstructions.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        Original images.
    codes : array_like, shape (N, latent_dim), or None
        Their codes, each drawn as an ``code_image_shape(latent_dim)`` image on its own range;
        None leaves the row out.
    x_hat : array_like, shape (N, C, H, W)
        Reconstructions.
    n : int, default 5
        Number of images (the first ``n``).
    title : str or None
        Figure title.
    max_width : float, optional
        The most inches the figure may take (:func:`image_grid`'s).

    Returns
    -------
    matplotlib.figure.Figure
        Three rows of ``n`` tiles (two without codes).
    """
    entries = [("x", "original", x), ("codes", "code", codes), ("x_hat", "reconstruction", x_hat)]
    return _rows_with_codes(entries, n, title, max_width)


def denoising_panel(
    noisy: ArrayLike,
    codes: ArrayLike | None,
    denoised: ArrayLike,
    clean: ArrayLike,
    psnr_noisy: float,
    psnr_denoised: float,
    n: int = 5,
    *,
    title: str | None = "Denoising",
    max_width: float | None = None,
) -> Figure:
    """Noisy inputs, their codes, the denoised outputs and the clean images.

    Parameters
    ----------
    noisy, denoised, clean : array_like, shape (N, C, H, W)
        Inputs with noise, the model's outputs, and the images without noise.
    codes : array_like, shape (N, latent_dim), or None
        Codes of the noisy inputs; None leaves the row out.
    psnr_noisy, psnr_denoised : float
        PSNR (dB) of the noisy and of the denoised images against the clean ones.
    n : int, default 5
        Number of images (the first ``n``).
    title : str
        Start of the figure title, which goes on with "PSNR <before> dB -> <after> dB" (None:
        only that).
    max_width : float, optional
        The most inches the figure may take (:func:`image_grid`'s).

    Returns
    -------
    matplotlib.figure.Figure
        Four rows of ``n`` tiles (three without codes).
    """
    entries = [
        ("noisy", "noisy", noisy),
        ("codes", "code", codes),
        ("denoised", "denoised", denoised),
        ("clean", "clean", clean),
    ]
    heading = f"PSNR {float(psnr_noisy):.1f} dB -> {float(psnr_denoised):.1f} dB"
    heading = f"{title}: {heading}" if title else heading
    return _rows_with_codes(entries, n, heading, max_width)


def interpolation(
    rows: Sequence[ArrayLike],
    row_titles: Sequence[str] | None = None,
    *,
    title: str | None = "Interpolation in latent space",
    max_width: float | None = None,
) -> Figure:
    """Decoded images along straight lines in latent space, one line per row.

    Parameters
    ----------
    rows : list of array_like
        Each ``(steps, C, H, W)``: decoded :func:`aelab.generate.interpolate` codes from one
        held-out image to another.
    row_titles : list of str, optional
        One per row (e.g. the model).
    title : str or None
        Figure title.
    max_width : float, optional
        The most inches the figure may take (:func:`image_grid`'s).

    Returns
    -------
    matplotlib.figure.Figure
        One row of tiles per line; columns are titled with the position ``t`` in ``[0, 1]`` when
        all rows have the same number of steps.
    """
    if isinstance(rows, np.ndarray) or not isinstance(rows, Sequence) or len(rows) == 0:
        return image_grid(rows)  # raises its ValueError
    lengths = {len(np.asarray(row)) for row in rows}
    col_titles = None
    if len(lengths) == 1 and (steps := lengths.pop()) > 1:
        col_titles = [f"{t:.2f}" for t in np.linspace(0.0, 1.0, steps)]
        col_titles[0], col_titles[-1] = "t=0", "t=1"
    return image_grid(
        rows, row_titles=row_titles, col_titles=col_titles, title=title, max_width=max_width
    )


def generated(
    images: ArrayLike,
    title: str | None = "Generated images",
    *,
    ncols: int = 10,
    max_width: float | None = None,
) -> Figure:
    """A grid of generated images, ``ncols`` per row.

    Parameters
    ----------
    images : array_like, shape (N, C, H, W)
        Decoded samples (e.g. of :func:`aelab.generate.random_codes`).
    title : str or None
        Figure title.
    ncols : int, default 10
        Images per row.
    max_width : float, optional
        The most inches the figure may take (:func:`image_grid`'s).

    Returns
    -------
    matplotlib.figure.Figure
        ``ceil(N / ncols)`` rows of tiles.
    """
    images = _images(images, "images")
    ncols = _count(ncols, "ncols")
    rows = [images[i : i + ncols] for i in range(0, len(images), ncols)]
    return image_grid(rows, title=title, max_width=max_width)


def manifold(
    images: ArrayLike,
    xs: ArrayLike,
    ys: ArrayLike,
    title: str | None = "Decoded latent grid",
    *,
    cmap: str = "gray",
    side: float | None = None,
    max_ticks: int = 5,
) -> Figure:
    """The decoded 2-D latent grid stitched into one image, with the grid's coordinates as ticks.

    Parameters
    ----------
    images : array_like, shape (len(ys) * len(xs), C, H, W)
        Decoded :func:`aelab.generate.manifold_grid` codes, row-major (rows follow ``ys``).
    xs, ys : array_like
        Column (``z[0]``) and row (``z[1]``) coordinates; up to ``max_ticks`` of each are
        written as ticks, with as many decimals as their spacing needs (at least one).
    title : str or None
        Figure title (None: none).
    cmap : str, default "gray"
        Colour map for grey images (on ``[0, 1]``).
    side : float, optional
        The figure's side in inches; by default the grid's tiles at 40 CSS pixels each, 3.5 to
        6 inches.
    max_ticks : int, default 5
        The most tick labels per axis, spread evenly over the grid's coordinates.

    Returns
    -------
    matplotlib.figure.Figure
        One axes holding one image.
    """
    tiles = _tiles(_images(images, "images"))
    xs, ys = _numeric(xs, "xs").ravel(), _numeric(ys, "ys").ravel()
    n_cols, n_rows = xs.size, ys.size
    if len(tiles) != n_rows * n_cols:
        raise ValueError(
            f"images has {len(tiles)} images; len(ys) * len(xs) = {n_rows * n_cols} are needed"
        )
    h, w = tiles.shape[1:3]
    grid = tiles.reshape(n_rows, n_cols, *tiles.shape[1:]).swapaxes(1, 2)
    stitched = grid.reshape(n_rows * h, n_cols * w, *tiles.shape[3:])

    if side is None:
        side = min(6.0, max(3.5, 0.4 * max(n_rows, n_cols) + 0.8))
    fig = Figure(figsize=(side, side), layout="constrained")
    ax = fig.subplots()
    _draw(ax, stitched, cmap, (0.0, 1.0))
    max_ticks = _count(max_ticks, "max_ticks")
    for values, size, set_ticks in ((xs, w, ax.set_xticks), (ys, h, ax.set_yticks)):
        at = np.unique(np.linspace(0, values.size - 1, min(values.size, max_ticks)).round())
        at = at.astype(int)
        set_ticks((at + 0.5) * size - 0.5, _tick_labels(values[at]))
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    if title:
        ax.set_title(title)
    return finish(fig)


def _tick_labels(values: np.ndarray) -> list[str]:
    """Coordinates to a tenth of their spacing (at least one decimal): ticks fall where the
    grid's points are, not on round numbers."""
    step = np.min(np.abs(np.diff(values))) if values.size > 1 else 1.0
    decimals = 1 if step <= 0 else max(1, int(np.ceil(-np.log10(step) + 1e-9)) + 1)
    return [f"{v:.{decimals}f}" for v in values]
