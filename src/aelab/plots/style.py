"""One look for every figure: one font size, and figures sized for the width they are shown at.

A figure is drawn for the size a reader sees it at, never scaled by the page: an inch of figure
is :data:`PX_PER_INCH` CSS pixels on screen (the report gives each ``<img>`` that width and
height, and renders the PNG at twice as many pixels for sharp high-density screens), so text
set at :data:`FONT_SIZE` points is the same size, about 14 CSS pixels, in every figure. A figure
that would be wider than a phone's screen has a narrow version drawn for it (the report's
``narrow`` figures), rather than shrunk until its text is unreadable.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.text import Text

FONT_SIZE = 10.0  # points: titles, labels, ticks, legends and annotations alike
PX_PER_INCH = 100  # CSS pixels per inch of figure, where the report shows it
NARROW_WIDTH = 3.5  # inches: a figure for a phone's screen (350 CSS px of its ~360)
TILE_PIXELS = (64, 112)  # CSS pixels of one image tile: at least, at most


def font_px() -> float:
    """:data:`FONT_SIZE` in CSS pixels where a figure is shown at its own size."""
    return FONT_SIZE / 72 * PX_PER_INCH


def tile_inches(height: int, width: int) -> float:
    """The side of one image tile in inches: twice the image's pixels, within
    :data:`TILE_PIXELS` (a 28×28 digit 64 px, an 8×8 one 64 px, a 64×64 face 112 px)."""
    lo, hi = TILE_PIXELS
    return min(hi, max(lo, 2 * max(int(height), int(width)))) / PX_PER_INCH


def finish(fig: Figure) -> Figure:
    """Every text of ``fig`` at :data:`FONT_SIZE` (ticks drawn later included); returns ``fig``.

    Applied to the figure itself, never to matplotlib's global settings."""
    for ax in fig.axes:
        ax.tick_params(labelsize=FONT_SIZE)
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                text.set_fontsize(FONT_SIZE)
    for text in fig.findobj(Text):
        text.set_fontsize(FONT_SIZE)
    return fig


def size_px(fig: Figure) -> tuple[int, int]:
    """The CSS size ``(width, height)`` a figure is drawn for (its inches × :data:`PX_PER_INCH`)."""
    w, h = fig.get_size_inches()
    return round(w * PX_PER_INCH), round(h * PX_PER_INCH)


__all__ = ["FONT_SIZE", "NARROW_WIDTH", "PX_PER_INCH", "finish", "font_px", "size_px",
           "tile_inches"]  # fmt: skip
