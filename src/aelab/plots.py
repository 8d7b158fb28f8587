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

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

from .generate import code_image_shape

__all__ = [
    "activation_bars",
    "codes_and_reconstructions",
    "denoising_panel",
    "embedding_panels",
    "generated",
    "image_grid",
    "interpolation",
    "latent_scatter",
    "learning_curves",
    "manifold",
    "save",
    "weight_tiles",
]

ValueRange = tuple[float, float] | None

_ALIVE_COLOR = "tab:blue"
_DEAD_COLOR = "tab:red"


# --- validation ---------------------------------------------------------------------------------


def _numeric(a: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if not (np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; only finite values can be drawn")
    return arr


def _images(a: ArrayLike, name: str) -> np.ndarray:
    """Check images (n, C, H, W) with C in {1, 3}, or (n, h, w); return them as float64."""
    arr = _numeric(a, name).astype(np.float64)
    if arr.ndim == 3 or (arr.ndim == 4 and arr.shape[1] in (1, 3)):
        return arr
    raise ValueError(
        f"{name} must be images of shape (n, C, H, W) with C 1 or 3, or (n, h, w); "
        f"got shape {arr.shape}"
    )


def _tiles(images: np.ndarray) -> np.ndarray:
    """Checked images as drawable tiles: (n, H, W) grey or (n, H, W, 3) RGB."""
    if images.ndim == 3:
        return images
    return images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)


def _codes(a: ArrayLike, name: str = "codes") -> np.ndarray:
    arr = _numeric(a, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, latent_dim), got shape {arr.shape}")
    return arr


def _code_tiles(codes: np.ndarray) -> np.ndarray:
    """Codes (n, D) as small images (n, h, w) (see :func:`aelab.generate.code_image_shape`)."""
    return codes.reshape(codes.shape[0], *code_image_shape(codes.shape[1]))


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _same_length(n: int, arrays: Mapping[str, np.ndarray]) -> int:
    """Check that the arrays have equal first dimensions; return min(n, that length)."""
    lengths = {name: arr.shape[0] for name, arr in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"the arrays must have the same number of items, got lengths {lengths}")
    return min(n, next(iter(lengths.values())))


def _is_range(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence | np.ndarray):
        return False
    return len(value) == 2 and all(isinstance(v, (int, float, np.number)) for v in value)


def _per_row(value: object, n_rows: int, name: str, is_single) -> list:
    """A single setting for all rows, or one per row, as a list of n_rows settings."""
    if is_single(value):
        return [value] * n_rows
    if isinstance(value, Sequence) and len(value) == n_rows and all(map(is_single, value)):
        return list(value)
    raise ValueError(
        f"{name}={value!r} is not allowed: give one setting for all rows or a list of "
        f"{n_rows} (one per row)"
    )


def _check_range(value: ValueRange, name: str = "value_range") -> ValueRange:
    if value is None:
        return None
    lo, hi = float(value[0]), float(value[1])
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"{name}={value!r} is not allowed: it must be None or (lo, hi), lo < hi")
    return lo, hi


def _titles(titles: Sequence[str] | None, n: int, name: str) -> list[str] | None:
    if titles is None:
        return None
    if isinstance(titles, str) or len(titles) != n:
        raise ValueError(f"{name} must be a list of {n} strings, got {titles!r}")
    return [str(t) for t in titles]


# --- drawing ------------------------------------------------------------------------------------


def _draw(ax: Axes, tile: np.ndarray, cmap: str, value_range: ValueRange) -> None:
    """Show one tile: 2-D in ``cmap`` on ``value_range`` (None: its own), (H, W, 3) as RGB."""
    lo, hi = value_range if value_range is not None else (float(tile.min()), float(tile.max()))
    if tile.ndim == 3:
        rgb = (tile - lo) / (hi - lo) if hi > lo else np.zeros_like(tile)
        ax.imshow(np.clip(rgb, 0.0, 1.0), interpolation="nearest")
    else:
        ax.imshow(tile, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")


def _bare(ax: Axes) -> None:
    """No ticks and no frame, but keep the axis labels (used for row titles)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def image_grid(
    rows: Sequence[ArrayLike],
    *,
    row_titles: Sequence[str] | None = None,
    col_titles: Sequence[str] | None = None,
    title: str | None = None,
    tile_size: float = 1.6,
    cmap: str | Sequence[str] = "gray",
    value_range: ValueRange | Sequence[ValueRange] = (0, 1),
) -> Figure:
    """A grid of image tiles, one row per array: the building block of every image figure.

    Parameters
    ----------
    rows : list of array_like
        Each ``(n, C, H, W)`` with C = 1 (grey) or 3 (RGB), or ``(n, h, w)``; rows may differ in
        length and tile size. Cells right of a shorter row stay empty.
    row_titles : list of str, optional
        One per row, written at the left.
    col_titles : list of str, optional
        One per column, written above the first row.
    title : str, optional
        Figure title.
    tile_size : float, default 1.6
        Width and height of one cell in inches.
    cmap : str or list of str, default "gray"
        Colour map for grey tiles, for all rows or one per row (RGB tiles ignore it).
    value_range : (lo, hi), None, or a list of those, default (0, 1)
        The values mapped to black and white, for all rows or one per row; None draws every tile
        on its own range (for weights and codes).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per cell; the axes of drawn tiles each hold one image.
    """
    if isinstance(rows, np.ndarray) or not isinstance(rows, Sequence) or len(rows) == 0:
        shape = f"an array of shape {rows.shape}" if isinstance(rows, np.ndarray) else repr(rows)
        raise ValueError(f"rows must be a non-empty list of image arrays, got {shape}")
    tiles = [_tiles(_images(row, f"rows[{i}]")) for i, row in enumerate(rows)]
    n_rows, n_cols = len(tiles), max(len(t) for t in tiles)
    row_titles = _titles(row_titles, n_rows, "row_titles")
    col_titles = _titles(col_titles, n_cols, "col_titles")
    cmaps = _per_row(cmap, n_rows, "cmap", lambda v: isinstance(v, str))
    ranges = [_check_range(r) for r in _per_row(value_range, n_rows, "value_range", _is_range)]
    size = float(tile_size)
    if not np.isfinite(size) or size <= 0:
        raise ValueError(f"tile_size must be a finite number > 0, got {tile_size!r}")

    width = n_cols * size + (0.3 if row_titles else 0.0)
    height = n_rows * size + (0.4 if title else 0.0) + (0.3 if col_titles else 0.0)
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, (row, row_cmap, row_range) in enumerate(zip(tiles, cmaps, ranges, strict=True)):
        for j, ax in enumerate(axes[i]):
            if j >= len(row):
                ax.set_axis_off()
                continue
            _draw(ax, row[j], row_cmap, row_range)
            _bare(ax)
        if row_titles:
            axes[i, 0].set_ylabel(row_titles[i], fontsize=9)
    if col_titles:
        for j, ax in enumerate(axes[0]):
            ax.set_title(col_titles[j], fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def save(fig: Figure, path: str | PathLike, dpi: int = 100) -> Path:
    """Write a figure as PNG (creating missing parent folders) and return the path.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or path-like
        Where to write; the format is PNG whatever the suffix.
    dpi : int, default 100
        Resolution; the image is ``figsize * dpi`` pixels.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if not isinstance(fig, Figure):
        raise ValueError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    dpi = _count(dpi, "dpi")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


# --- image figures ------------------------------------------------------------------------------


def weight_tiles(
    w_in: ArrayLike,
    w_out: ArrayLike,
    n: int = 8,
    *,
    title: str = "First-layer encoder and last-layer decoder weights",
    cmap: str = "gray",
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
    title : str
        Figure title.
    cmap : str, default "gray"
        Colour map; each tile is drawn on its own range.

    Returns
    -------
    matplotlib.figure.Figure
        Two rows of tiles.
    """
    n = _count(n, "n")
    w_in, w_out = _images(w_in, "w_in"), _images(w_out, "w_out")
    return image_grid(
        [w_in[:n], w_out[:n]],
        row_titles=["encoder, first layer", "decoder, last layer"],
        title=title,
        cmap=cmap,
        value_range=None,
    )


def _rows_with_codes(
    entries: Sequence[tuple[str, str, ArrayLike | None]], n: int, title: str
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
    return image_grid(rows, row_titles=row_titles, title=title, value_range=ranges)


def codes_and_reconstructions(
    x: ArrayLike,
    codes: ArrayLike | None,
    x_hat: ArrayLike,
    n: int = 5,
    *,
    title: str = "Originals, codes and reconstructions",
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
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Three rows of ``n`` tiles (two without codes).
    """
    entries = [("x", "original", x), ("codes", "code", codes), ("x_hat", "reconstruction", x_hat)]
    return _rows_with_codes(entries, n, title)


def denoising_panel(
    noisy: ArrayLike,
    codes: ArrayLike | None,
    denoised: ArrayLike,
    clean: ArrayLike,
    psnr_noisy: float,
    psnr_denoised: float,
    n: int = 5,
    *,
    title: str = "Denoising",
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
        Start of the figure title, which goes on with "PSNR <before> dB -> <after> dB".

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
    heading = f"{title}: PSNR {float(psnr_noisy):.1f} dB -> {float(psnr_denoised):.1f} dB"
    return _rows_with_codes(entries, n, heading)


def interpolation(
    rows: Sequence[ArrayLike],
    row_titles: Sequence[str] | None = None,
    *,
    title: str = "Interpolation in latent space",
) -> Figure:
    """Decoded images along straight lines in latent space, one line per row.

    Parameters
    ----------
    rows : list of array_like
        Each ``(steps, C, H, W)``: decoded :func:`aelab.generate.interpolate` codes from one
        held-out image to another.
    row_titles : list of str, optional
        One per row (e.g. the model).
    title : str
        Figure title.

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
        col_titles = [f"t={t:.2f}" for t in np.linspace(0.0, 1.0, steps)]
    return image_grid(rows, row_titles=row_titles, col_titles=col_titles, title=title)


def generated(images: ArrayLike, title: str = "Generated images", *, ncols: int = 10) -> Figure:
    """A grid of generated images, ``ncols`` per row.

    Parameters
    ----------
    images : array_like, shape (N, C, H, W)
        Decoded samples (e.g. of :func:`aelab.generate.random_codes`).
    title : str
        Figure title.
    ncols : int, default 10
        Images per row.

    Returns
    -------
    matplotlib.figure.Figure
        ``ceil(N / ncols)`` rows of tiles.
    """
    images = _images(images, "images")
    ncols = _count(ncols, "ncols")
    rows = [images[i : i + ncols] for i in range(0, len(images), ncols)]
    return image_grid(rows, title=title)


def manifold(
    images: ArrayLike,
    xs: ArrayLike,
    ys: ArrayLike,
    title: str = "Decoded latent grid",
    *,
    cmap: str = "gray",
) -> Figure:
    """The decoded 2-D latent grid stitched into one image, with the grid's coordinates as ticks.

    Parameters
    ----------
    images : array_like, shape (len(ys) * len(xs), C, H, W)
        Decoded :func:`aelab.generate.manifold_grid` codes, row-major (rows follow ``ys``).
    xs, ys : array_like
        Column (``z[0]``) and row (``z[1]``) coordinates, written as ticks rounded to 1 decimal.
    title : str
        Figure title.
    cmap : str, default "gray"
        Colour map for grey images (on ``[0, 1]``).

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

    side = min(10.0, max(4.0, 0.5 * max(n_rows, n_cols) + 1.5))
    fig = Figure(figsize=(side, side), layout="constrained")
    ax = fig.subplots()
    _draw(ax, stitched, cmap, (0.0, 1.0))
    ax.set_xticks((np.arange(n_cols) + 0.5) * w - 0.5, [f"{v:.1f}" for v in xs], rotation=90)
    ax.set_yticks((np.arange(n_rows) + 0.5) * h - 0.5, [f"{v:.1f}" for v in ys])
    ax.tick_params(labelsize=7)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    return fig


# --- charts -------------------------------------------------------------------------------------


def learning_curves(
    histories: Mapping[str, Sequence[Mapping]],
    title: str = "Learning curves",
    *,
    log_y: bool = False,
) -> Figure:
    """Training loss (solid) and held-out loss (dashed) per epoch, one panel per model.

    Panels have their own y axes, since models' losses differ in kind (binary cross-entropy,
    squared error, a VAE's evidence bound).

    Parameters
    ----------
    histories : dict of str to list of dict
        Model name to its history records ``{"epoch", "loss", "heldout_loss", "seconds"}``;
        ``heldout_loss`` may be None (no held-out line then, or gaps).
    title : str
        Figure title.
    log_y : bool, default False
        Logarithmic loss axes.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per model, up to three per row.
    """
    if not isinstance(histories, Mapping) or not histories:
        raise ValueError(
            f"histories must be a non-empty dict of model name to records, got {histories!r}"
        )
    n_cols = min(3, len(histories))
    n_rows = math.ceil(len(histories) / n_cols)
    fig = Figure(figsize=(4.0 * n_cols, 3.0 * n_rows + 0.4), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[len(histories) :]:
        ax.set_axis_off()
    for ax, (name, records) in zip(axes, histories.items(), strict=False):
        ax.set_title(str(name))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        if not records:
            ax.text(
                0.5, 0.5, "no epochs recorded", ha="center", va="center", transform=ax.transAxes
            )
            continue
        for key in ("epoch", "loss", "heldout_loss"):
            if any(key not in r for r in records):
                raise ValueError(
                    f"histories[{name!r}] has a record without {key!r}; records "
                    "need 'epoch', 'loss' and 'heldout_loss'"
                )
        epochs = [r["epoch"] for r in records]
        ax.plot(epochs, [r["loss"] for r in records], "-", color="C0", label="training")
        heldout = [np.nan if r["heldout_loss"] is None else r["heldout_loss"] for r in records]
        if not np.all(np.isnan(np.asarray(heldout, dtype=float))):
            ax.plot(epochs, heldout, "--", color="C1", label="held-out")
        if log_y:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def activation_bars(
    max_act: ArrayLike,
    dead: ArrayLike,
    title: str = "Maximum activation per latent unit",
) -> Figure:
    """One bar per latent unit with its maximum activation; dead units in another colour.

    Parameters
    ----------
    max_act : array_like, shape (D,)
        Per-unit maximum over the data (:func:`aelab.metrics.max_activation`).
    dead : array_like of bool, shape (D,)
        Dead units (:func:`aelab.metrics.dead_units`).
    title : str
        Start of the title, which goes on with "<k> of <D> units dead".

    Returns
    -------
    matplotlib.figure.Figure
        One axes with D bars.
    """
    max_act = _numeric(max_act, "max_act")
    dead = np.asarray(dead)
    if max_act.ndim != 1:
        raise ValueError(f"max_act must have shape (D,), got shape {max_act.shape}")
    if dead.dtype != np.bool_ or dead.shape != max_act.shape:
        raise ValueError(
            f"dead must be a bool array of shape {max_act.shape}, got {dead.dtype} {dead.shape}"
        )
    units = max_act.size
    fig = Figure(figsize=(min(12.0, max(4.0, 0.2 * units + 1.5)), 3.2), layout="constrained")
    ax = fig.subplots()
    colors = np.where(dead, _DEAD_COLOR, _ALIVE_COLOR)
    ax.bar(np.arange(units), max_act, color=colors, width=0.8)
    # A dead ReLU unit's bar has height 0: mark dead units on the axis so they show anyway.
    dead_x = np.flatnonzero(dead)
    ax.plot(dead_x, np.zeros(dead_x.size), "x", color=_DEAD_COLOR, ms=6, clip_on=False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("latent unit")
    ax.set_ylabel("maximum activation")
    ax.set_xlim(-0.6, units - 0.4)
    ax.legend(
        handles=[Patch(color=_ALIVE_COLOR, label="varies"), Patch(color=_DEAD_COLOR, label="dead")],
        fontsize=8,
    )
    ax.set_title(f"{title}: {int(dead.sum())} of {units} units dead")
    return fig


def _label_colors(labels: np.ndarray) -> dict:
    """Scatter colour arguments and colour bar ticks for labels.

    Up to 20 distinct labels get discrete tab10/tab20 colours with one tick per label; more get
    viridis over the label values (over their rank for non-numeric labels).
    """
    classes, index = np.unique(labels, return_inverse=True)
    if classes.size <= 20:
        base = colormaps["tab10" if classes.size <= 10 else "tab20"]
        cmap = ListedColormap([base(i) for i in range(classes.size)])
        norm = BoundaryNorm(np.arange(classes.size + 1) - 0.5, classes.size)
        ticks = np.arange(classes.size)
        return {"c": index, "cmap": cmap, "norm": norm, "ticks": ticks, "ticklabels": classes}
    values = labels.astype(float) if np.issubdtype(labels.dtype, np.number) else index
    norm = Normalize(float(values.min()), float(values.max()))
    return {
        "c": values,
        "cmap": colormaps["viridis"],
        "norm": norm,
        "ticks": None,
        "ticklabels": None,
    }


def _scatter_panels(
    panels: Sequence[tuple[str, ArrayLike]],
    labels: ArrayLike | None,
    title: str,
    axis_labels: tuple[str, str],
) -> Figure:
    if isinstance(panels, np.ndarray) or not isinstance(panels, Sequence) or not panels:
        raise ValueError("panels must be a non-empty list of (name, points) pairs")
    points = []
    for i, panel in enumerate(panels):
        if not isinstance(panel, tuple) or len(panel) != 2:
            raise ValueError(
                f"panels[{i}] must be a (name, points) pair, got {type(panel).__name__}"
            )
        name, p = panel
        arr = _numeric(p, f"panels[{i}] ({name})")
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"panels[{i}] ({name}) must have shape (N, 2), got shape {arr.shape}")
        points.append((str(name), arr))
    n = points[0][1].shape[0]
    if any(arr.shape[0] != n for _, arr in points):
        raise ValueError(f"all panels must have the same N, got {[a.shape[0] for _, a in points]}")
    colors = None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got shape {labels.shape}")
        colors = _label_colors(labels)

    fig = Figure(figsize=(3.6 * len(points) + 1.0, 3.8), layout="constrained")
    axes = fig.subplots(1, len(points), squeeze=False)[0]
    size = float(np.clip(6000.0 / n, 3.0, 20.0))
    for ax, (name, arr) in zip(axes, points, strict=True):
        if colors is None:
            mappable = ax.scatter(arr[:, 0], arr[:, 1], s=size, color="C0", linewidths=0)
        else:
            mappable = ax.scatter(
                arr[:, 0],
                arr[:, 1],
                s=size,
                c=colors["c"],
                cmap=colors["cmap"],
                norm=colors["norm"],
                linewidths=0,
            )
        ax.set_title(name)
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
    if colors is not None:
        bar = fig.colorbar(mappable, ax=list(axes), ticks=colors["ticks"], label="label")
        if colors["ticklabels"] is not None:
            bar.set_ticklabels([str(v) for v in colors["ticklabels"]])
    fig.suptitle(title)
    return fig


def embedding_panels(
    panels: Sequence[tuple[str, ArrayLike]],
    labels: ArrayLike | None,
    title: str = "2-D maps of images and codes",
) -> Figure:
    """Side-by-side 2-D scatters of the same items, coloured by label.

    For the comparison of PCA(X), PCA(codes), t-SNE(X) and t-SNE(codes) (van der Maaten & Hinton
    2008): do the codes separate the classes better than the pixels?

    Parameters
    ----------
    panels : list of (str, array_like of shape (N, 2))
        Panel title and the N points, the same items in every panel.
    labels : array_like, shape (N,), or None
        Colours: up to 20 distinct labels in discrete tab10/tab20 colours, more on viridis; one
        colour bar for all panels. None draws every point in one colour.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One scatter axes per panel, plus the colour bar's axes when labels are given.
    """
    return _scatter_panels(panels, labels, title, ("dimension 1", "dimension 2"))


def latent_scatter(z2: ArrayLike, labels: ArrayLike | None, title: str = "Latent codes") -> Figure:
    """The 2-D codes of a two-unit (variational) autoencoder, coloured by label.

    Parameters
    ----------
    z2 : array_like, shape (N, 2)
        The codes (for a VAE, the means).
    labels : array_like, shape (N,), or None
        Colours, as in :func:`embedding_panels`, with a colour bar.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One scatter axes with axes labelled z[0] and z[1], plus the colour bar's axes.
    """
    return _scatter_panels([("", z2)], labels, title, ("z[0]", "z[1]"))
