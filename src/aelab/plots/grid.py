"""The one tile grid every picture of images goes through, its input checks, and saving a figure."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from aelab.analysis.generate import code_image_shape

from .style import FONT_SIZE, finish, tile_inches

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


def _limits(tile: np.ndarray, value_range: ValueRange) -> tuple[float, float]:
    """The values drawn black and white: ``value_range``, or (None) the tile's own range."""
    return value_range if value_range is not None else (float(tile.min()), float(tile.max()))


def _scaled(tile: np.ndarray, value_range: ValueRange) -> np.ndarray:
    """``tile`` mapped from :func:`_limits` to [0, 1] (clipped); a constant tile to 0."""
    lo, hi = _limits(tile, value_range)
    return np.clip((tile - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(tile)


def _draw(ax: Axes, tile: np.ndarray, cmap: str, value_range: ValueRange) -> None:
    """Show one tile: 2-D in ``cmap`` on ``value_range`` (None: its own), (H, W, 3) as RGB."""
    if tile.ndim == 3:
        ax.imshow(_scaled(tile, value_range), interpolation="nearest")
    else:
        lo, hi = _limits(tile, value_range)
        ax.imshow(tile, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")


GAP = 0.06  # white between two tiles of a row, as a fraction of a tile's side


def _rgba(tile: np.ndarray, cmap: str, value_range: ValueRange) -> np.ndarray:
    """One tile as RGBA floats in [0, 1]: 2-D in ``cmap`` on ``value_range`` (None: its own),
    (H, W, 3) stretched from ``value_range`` to [0, 1]; a constant tile takes the bottom colour."""
    scaled = _scaled(tile, value_range)
    if tile.ndim == 3:
        return np.concatenate([scaled, np.ones((*tile.shape[:2], 1))], axis=-1)
    return np.asarray(colormaps[cmap](scaled), dtype=np.float64)


def row_mosaic(
    tiles: np.ndarray, cmap: str, value_range: ValueRange
) -> tuple[np.ndarray, int, int]:
    """The tiles of one row side by side as one RGBA image: each in a square cell of ``side``
    pixels (a tile narrower or lower than the cell centred in it, the rest transparent), cells
    ``gap`` pixels apart. Returns ``(image, side, gap)``: tile ``j`` starts at column
    ``j * (side + gap)``."""
    h, w = tiles.shape[1:3]
    side = max(h, w)
    gap = max(1, round(GAP * side))
    n = len(tiles)
    out = np.zeros((side, n * side + (n - 1) * gap, 4))
    top, left = (side - h) // 2, (side - w) // 2
    for j, tile in enumerate(tiles):
        x0 = j * (side + gap) + left
        out[top : top + h, x0 : x0 + w] = _rgba(tile, cmap, value_range)
    return out, side, gap


def draw_row(
    ax: Axes, tiles: np.ndarray, cmap: str, value_range: ValueRange, n_cols: int
) -> tuple[int, int]:
    """Draw ``tiles`` into ``ax`` as one :func:`row_mosaic` image, bare, spanning ``n_cols``
    cells (so that the columns of rows of any length line up), left-aligned, y downwards.
    Returns ``(side, gap)``: tile ``j`` covers ``x`` from ``j * (side + gap)``, ``y`` 0 to side."""
    image, side, gap = row_mosaic(tiles, cmap, value_range)
    ax.imshow(image, interpolation="nearest", extent=(0, image.shape[1], side, 0))
    ax.set_xlim(0, n_cols * (side + gap) - gap)
    ax.set_ylim(side, 0)
    ax.set_aspect("equal", adjustable="box", anchor="W")
    _bare(ax)
    return side, gap


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
    tile_size: float | None = None,
    cmap: str | Sequence[str] = "gray",
    value_range: ValueRange | Sequence[ValueRange] = (0, 1),
    max_width: float | None = None,
) -> Figure:
    """A grid of image tiles, one row per array: the building block of every image figure.

    Parameters
    ----------
    rows : list of array_like
        Each ``(n, C, H, W)`` with C = 1 (grey) or 3 (RGB), or ``(n, h, w)``; rows may differ in
        length and tile size. Cells right of a shorter row stay empty.
    row_titles : list of str, optional
        One per row, written at the left, across. Titles are drawn as written (no mathtext:
        ``$`` is a dollar): they are often the names of a user's groups.
    col_titles : list of str, optional
        One per column, written above the first row.
    title : str, optional
        Figure title.
    tile_size : float, optional
        Width and height of one cell in inches; by default twice the largest image's pixels,
        64 to 112 CSS pixels (:func:`aelab.plots.style.tile_inches`).
    cmap : str or list of str, default "gray"
        Colour map for grey tiles, for all rows or one per row (RGB tiles ignore it).
    value_range : (lo, hi), None, or a list of those, default (0, 1)
        The values mapped to black and white, for all rows or one per row; None draws every tile
        on its own range (for weights and codes).
    max_width : float, optional
        The most inches the figure may take: tiles are made smaller to fit (a phone's screen).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per row, in order, holding one image: the row's tiles coloured and side by
        side (:func:`row_mosaic`), the row title as its y label, the column titles above the
        first. One image per row rather than an axes per tile: a report draws about a
        thousand tiles, and matplotlib's cost is per axes and per image (``benchmarks/README.md``).
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
    largest = max(t.shape[1:3] for t in tiles)
    size = tile_inches(*largest) if tile_size is None else float(tile_size)
    if not np.isfinite(size) or size <= 0:
        raise ValueError(f"tile_size must be a finite number > 0, got {tile_size!r}")
    # row titles across, at the left: as wide as the longest (0.6 em a character)
    labels = max(len(t) for t in row_titles) * 0.6 * FONT_SIZE / 72 + 0.15 if row_titles else 0.0
    if max_width is not None:
        size = min(size, (float(max_width) - labels) / n_cols)
        if size <= 0:
            raise ValueError(f"max_width={max_width!r} leaves no room for {n_cols} tiles")

    width = n_cols * size + labels
    height = n_rows * size + (0.4 if title else 0.0) + (0.3 if col_titles else 0.0)
    fig = Figure(figsize=(width, height), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, hspace=0.02, wspace=0.0)
    axes = fig.subplots(n_rows, 1, squeeze=False)[:, 0]
    for i, (ax, row, row_cmap, row_range) in enumerate(zip(axes, tiles, cmaps, ranges)):
        side, gap = draw_row(ax, row, row_cmap, row_range, n_cols)
        if row_titles:
            ax.set_ylabel(row_titles[i], rotation=0, ha="right", va="center", parse_math=False)
        if i == 0 and col_titles:
            for j, text in enumerate(col_titles):
                ax.text(j * (side + gap) + side / 2, -0.04 * side, text, ha="center",
                        va="bottom", parse_math=False)  # fmt: skip
    if title:
        fig.suptitle(title, parse_math=False)
    return finish(fig)


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """A figure as the bytes of a PNG file."""
    if not isinstance(fig, Figure):
        raise ValueError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=_count(dpi, "dpi"), format="png")
    return buffer.getvalue()


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


def panel_axes(n: int, panel_height: float, width: float = 4.0, cols: int = 3):
    """A figure of ``n`` panels, up to ``cols`` a row (unused ones hidden), and its axes."""
    n_cols = min(cols, n)
    n_rows = -(-n // n_cols)
    fig = Figure(figsize=(width * n_cols, panel_height * n_rows + 0.4), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes
