"""Calibrated anomaly maps on one fixed colour scale, and the gallery figure of the most normal
and the most unusual images.

A calibrated map holds ``-log10 p`` per pixel (:func:`aelab.analysis.anomaly.significance`),
drawn on ``[0, 2 t]`` where ``t = -log10(level)`` is the per-pixel threshold: blue is as normal as
the calibration images (``p`` near 1), white is the threshold, red is beyond it. The scale
depends on the level alone, never on the images drawn (anomalib rescales each heat map by its
own minimum and maximum, so a normal image looks as alarming as a defective one): a normal
image's map and an unusual one's can be compared by eye, and the same image gets the same
colours in any batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from .style import FONT_SIZE, finish, tile_inches

MAP_CMAP = "RdBu_r"  # diverging: blue below the threshold, white at it, red above
BOX_COLOUR = (0, 160, 0)  # an explanation's regions (green: neither of the map's colours)


def significance_rgb(significance: np.ndarray, level: float) -> np.ndarray:
    """Maps of ``-log10 p`` ``(..., H, W)`` as RGB ``(..., H, W, 3)`` uint8 on the fixed scale
    of ``level`` (values past ``2 t`` drawn as ``2 t``)."""
    from matplotlib import colormaps

    top = -2.0 * np.log10(level)
    frac = np.clip(np.asarray(significance, dtype=np.float64) / top, 0.0, 1.0)
    return (colormaps[MAP_CMAP](frac)[..., :3] * 255 + 0.5).astype(np.uint8)


def _outline(rgb: np.ndarray, boxes: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
    """``rgb`` ``(H, W, 3)`` with each box's edge pixels painted :data:`BOX_COLOUR`."""
    out = rgb.copy()
    for top, left, bottom, right in boxes:
        out[top, left : right + 1] = out[bottom, left : right + 1] = BOX_COLOUR
        out[top : bottom + 1, left] = out[top : bottom + 1, right] = BOX_COLOUR
    return out


def outlined(rgb: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], scale: int) -> np.ndarray:
    """``rgb`` ``(H, W, 3)`` enlarged ``scale`` times (each pixel a block) with the boxes drawn
    one enlarged pixel wide, so a region stays visible on a small image."""
    big = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    grown = [(t * scale, x * scale, (b + 1) * scale - 1, (r + 1) * scale - 1)
             for t, x, b, r in boxes]  # fmt: skip
    for _ in range(max(1, scale // 4)):  # a line that thickens inward with the scale
        big = _outline(big, grown)
        grown = [(t + 1, x + 1, max(t + 1, b - 1), max(x + 1, r - 1)) for t, x, b, r in grown]
    return big


def _inches(lines: Sequence[str]) -> float:
    """The width of the widest of ``lines`` at :data:`FONT_SIZE`, in inches (0 for none)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    props, text = FontProperties(size=FONT_SIZE), TextToPath()
    widths = [text.get_text_width_height_descent(s, props, ismath=False)[0] for s in lines]
    return max(widths, default=0.0) / 72.0


def anomaly_gallery(
    images: np.ndarray,
    significance: np.ndarray,
    level: float,
    labels: Sequence[str],
    boxes: Sequence[Sequence[tuple[int, int, int, int]]],
    n_normal: int,
    title: str | None = "Most normal and most unusual images",
    cols: int | None = None,
) -> Figure:
    """The images (top row) above their calibrated maps (bottom row), the ``n_normal`` most
    normal first, then the most unusual, every map on the one fixed scale of ``level`` with its
    explanation's regions outlined; one colour bar with the threshold marked.

    Parameters
    ----------
    images : ndarray (N, C, H, W) in [0, 1]
    significance : ndarray (N, H, W)
        ``-log10 p`` per pixel.
    level : float
        The per-pixel level: the scale is ``[0, -2 log10(level)]``, its middle the threshold.
    labels : sequence of str
        A short line under each map (its score, its p-value).
    boxes : sequence of sequences of (top, left, bottom, right)
        Each image's regions (inclusive pixel bounds).
    n_normal : int
        How many of the images are the most normal ones (the rest: the most unusual).
    cols : int, optional
        Images per row (default: all in one row); each row of images has its maps below it.
    """
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    n = len(images)
    if not (len(significance) == len(labels) == len(boxes) == n) or n == 0:
        raise ValueError("images, significance, labels and boxes must have one entry per image")
    cols = n if cols is None else max(1, min(int(cols), n))
    chunks = -(-n // cols)
    tile = tile_inches(*images.shape[-2:])
    widest = _inches([line for label in labels for line in label.split("; ")])
    column = max(tile + 0.35, widest + 0.2)  # a label under a small image is wider than it
    fig = Figure(figsize=(cols * column + 1.3, chunks * 2 * (tile + 0.45) + 0.4),
                 layout="constrained")  # fmt: skip
    axes = fig.subplots(2 * chunks, cols, squeeze=False)
    rgb = significance_rgb(significance, level)
    for i in range(chunks * cols):
        top_ax, map_ax = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        if i >= n:
            top_ax.set_axis_off()
            map_ax.set_axis_off()
            continue
        img = images[i]
        shown = img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1)
        top_ax.imshow(shown, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        top_ax.set_title("most normal" if i < n_normal else "most unusual",
                         color="tab:blue" if i < n_normal else "tab:red")  # fmt: skip
        map_ax.imshow(rgb[i], interpolation="nearest")
        for t, left, bottom, right in boxes[i]:  # on the pixels' edges, hiding none
            map_ax.add_patch(_box(t, left, bottom, right))
        map_ax.set_xlabel(labels[i].replace("; ", "\n"))
        for ax in (top_ax, map_ax):
            ax.set_xticks([])
            ax.set_yticks([])
    low, middle, top = 0.0, -np.log10(level), -2.0 * np.log10(level)
    mappable = _scalar_mappable(colormaps[MAP_CMAP], Normalize(low, top))
    # the bar clear of the last column's label, which may reach past its image
    overhang = max(0.0, (widest - tile) / 2)
    bar = fig.colorbar(mappable, ax=axes[1::2, :].ravel().tolist(), fraction=0.05,
                       pad=0.02 + overhang / (cols * column))  # fmt: skip
    bar.set_ticks([low, middle, top])
    bar.set_ticklabels(["p=1", f"p={level:.3g}\n(threshold)", f"p≤{level * level:.2g}"])
    if title:
        fig.suptitle(title)
    return finish(fig)


def _box(top: int, left: int, bottom: int, right: int):
    from matplotlib.patches import Rectangle

    colour = tuple(c / 255 for c in BOX_COLOUR)
    return Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1, fill=False,
                     edgecolor=colour, linewidth=1.5)  # fmt: skip


def _scalar_mappable(cmap, norm):
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


__all__ = ["MAP_CMAP", "anomaly_gallery", "outlined", "significance_rgb"]
