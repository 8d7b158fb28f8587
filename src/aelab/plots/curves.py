"""Measurement charts: each model's error against PCA's, PSNR against corruption level, anomaly
scores of usual and unusual images."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from aelab.analysis.metrics import PSNR_CAP_DB

from .grid import panel_axes
from .style import FONT_SIZE, finish

KIND_AXES = {  # what a corruption's level is, on its axis
    "gaussian": "noise standard deviation σ",
    "saltpepper": "share of pixels set to 0 or 1",
    "mask": "share of pixels set to 0",
}
KIND_TITLES = {"gaussian": "Gaussian noise", "saltpepper": "salt and pepper", "mask": "masking"}


def robustness(
    curve: Mapping,
    title: str | None = "Robustness to corruption",
    *,
    pca_of: Mapping[str, str] | None = None,
    colors: Mapping[str, str] | None = None,
    cols: int = 3,
) -> Figure:
    """Held-out PSNR against the corruption level, one panel per noise kind.

    Parameters
    ----------
    curve : dict
        :func:`aelab.robustness.corruption_curve`'s result; the corrupted input is drawn dotted
        black.
    title : str or None
    pca_of : dict of str to str, optional
        A model's name to the name of its PCA's method in ``curve`` (``"pca-20"``): the PCA is
        drawn dashed in its model's colour and named after it (once, for the first model that
        has it). By default methods whose name starts with ``pca`` are drawn dashed in colours
        of their own.
    colors : dict of str to colour, optional
        A model's colour (default ``C0``, ``C1``... in order).
    cols : int, default 3
        Panels per row (1 for a phone's screen); the legend takes a spare panel where the
        last row has one, else goes below.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per kind, y axes over the methods' PSNRs and the corrupted input's (exact
        reconstructions, whose PSNR is capped at 100 dB, left off the scale), one legend for all
        panels.
    """
    kinds = list(curve["levels"])
    if not kinds:
        raise ValueError("curve has no noise kinds to draw")
    pca_of = dict(pca_of or {})
    models = [n for n in curve["methods"] if n not in pca_of.values()]
    if not pca_of:
        models = [n for n in models if not n.startswith("pca")]
    palette = {n: (colors or {}).get(n, f"C{i % 10}") for i, n in enumerate(models)}
    lines = []  # (name, style, colour, label): a model, then its PCA
    drawn_pca = set()
    for name in models:
        lines.append((name, "-", palette[name], name))
        pca = pca_of.get(name)
        if pca is not None and pca in curve["methods"] and pca not in drawn_pca:
            drawn_pca.add(pca)
            sharing = [n for n in models if pca_of.get(n) == pca]
            label = f"PCA, {pca.split('-')[-1]} components"
            label += f" ({', '.join(sharing)})" if len(sharing) > 1 else ""
            lines.append((pca, "--", palette[name], label))
    for i, name in enumerate(n for n in curve["methods"] if n.startswith("pca")):
        if name not in drawn_pca and not pca_of:
            lines.append((name, "--", f"C{(len(models) + i) % 10}", name))
    values = [v for n, *_ in lines for kind in kinds for v in curve["methods"][n][kind]]
    values += [v for kind in kinds for v, lv in zip(curve["input"][kind],
               curve["levels"][kind], strict=True) if lv > 0]  # fmt: skip
    # an exact reconstruction's PSNR is capped (PCA with as many components as pixels, the
    # clean input): off the scale, or it would squash every other curve
    finite = [v for v in values if math.isfinite(v) and v < PSNR_CAP_DB - 1e-6]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = max(0.5, 0.06 * (hi - lo))
    fig, axes = panel_axes(len(kinds), 2.6, width=3.2 if cols > 1 else 3.5, cols=cols)
    for ax, kind in zip(axes, kinds, strict=False):
        levels = curve["levels"][kind]
        for name, style, color, label in lines:
            ax.plot(levels, curve["methods"][name][kind], style, color=color, marker="o", ms=3,
                    label=label)  # fmt: skip
        ax.plot(levels, curve["input"][kind], ":", color="black", label="corrupted input")
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(KIND_TITLES.get(kind, kind))
        ax.set_xlabel(KIND_AXES.get(kind, "level"))
        ax.grid(alpha=0.3)
    for ax in axes[: len(kinds) : min(cols, len(kinds))]:
        ax.set_ylabel("held-out PSNR (dB)")
    handles, labels = axes[0].get_legend_handles_labels()
    if len(axes) > len(kinds):  # a spare panel: the legend goes there
        axes[len(kinds)].legend(handles, labels, loc="center", frameon=False)
    else:
        fig.legend(handles, labels, loc="outside lower center", frameon=False,
                   ncols=min(len(labels), 2 * min(cols, len(kinds))) if cols > 1 and len(kinds) > 1
                   else 1)  # fmt: skip
    if title:
        fig.suptitle(title)
    return finish(fig)


def score_histograms(
    scores: Mapping[str, tuple[np.ndarray, np.ndarray, float | None]],
    title: str | None = "Anomaly scores",
    *,
    cols: int = 3,
    labels: tuple[str, str] = ("usual (training people)", "unusual (held-out people)"),
) -> Figure:
    """Per model, the reconstruction errors of usual and unusual held-out images and the
    threshold between them.

    Parameters
    ----------
    scores : dict of str to (normal, unusual, threshold)
        Errors (higher = more unusual) of normal and unusual images; ``threshold`` an error
        (None: none drawn).
    title : str or None
    cols : int, default 3
        Panels per row (1 for a phone's screen).
    labels : (str, str)
        What the usual and the unusual images are.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not scores:
        raise ValueError("scores is empty: nothing to draw")
    fig, axes = panel_axes(len(scores), 2.4, width=3.4, cols=cols)
    for ax, (name, (normal, unusual, threshold)) in zip(axes, scores.items(), strict=False):
        both = np.concatenate([normal, unusual])
        bins = np.linspace(both.min(), both.max(), 25) if np.ptp(both) > 0 else 10
        ax.hist(normal, bins=bins, alpha=0.6, label=labels[0])
        ax.hist(unusual, bins=bins, alpha=0.6, label=labels[1])
        if threshold is not None and math.isfinite(threshold):
            ax.axvline(threshold, color="black", ls="--", lw=1, label="threshold")
        ax.set_title(name)
        ax.set_xlabel("reconstruction error")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", frameon=False,
               ncols=min(cols, len(scores), 3))  # fmt: skip
    if title:
        fig.suptitle(title)
    return finish(fig)


def pca_ratio(
    points: Mapping[str, tuple[int, float]],
    title: str | None = None,
    *,
    intervals: Mapping[str, tuple[float, float]] | None = None,
    colors: Mapping[str, str] | None = None,
    width: float = 5.6,
) -> Figure:
    """Each model's held-out error divided by PCA's at the same code size, against code size.

    Parameters
    ----------
    points : dict of str to (int, float)
        Model name to ``(code size, error ratio)``; a ratio below 1 beats PCA.
    title : str, optional
        The axes' title (default: what the dashed line means).
    intervals : dict of str to (float, float), optional
        A model's 95% interval of the ratio over its seeds, drawn as an error bar.
    colors : dict of str to colour, optional
        A model's colour (default ``C0``, ``C1``... in order), to match other figures.
    width : float, default 5.6
        Inches.

    Returns
    -------
    matplotlib.figure.Figure
        One log-log axes: a point per model, labelled so that no two labels overlap, plain
        ticks at the code sizes, the region below 1 shaded to the axis.
    """
    if not isinstance(points, Mapping) or not points:
        raise ValueError(
            f"points must be a non-empty dict of name to (size, ratio), got {points!r}"
        )
    sizes = np.asarray([float(p[0]) for p in points.values()])
    ratios = np.asarray([float(p[1]) for p in points.values()])
    if np.any(sizes <= 0) or not np.all(np.isfinite(ratios)) or np.any(ratios <= 0):
        raise ValueError("points need code sizes >= 1 and finite ratios > 0")
    intervals = dict(intervals or {})
    spans = [intervals.get(n, (r, r)) for n, r in zip(points, ratios, strict=True)]
    lo = min(min(s[0] for s in spans), 1.0) / 1.3
    hi = max(max(s[1] for s in spans), 1.0) * 1.3
    x_lo, x_hi = sizes.min() / 1.8, sizes.max() * 1.8
    fig = Figure(figsize=(width, 3.4), layout="constrained")
    ax = fig.subplots()
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(lo, hi)
    ax.axhspan(lo, 1.0, color="C2", alpha=0.1, lw=0)  # to the axis: the limits are set
    ax.axhline(1.0, color="0.4", lw=1, ls="--")
    palette = {n: (colors or {}).get(n, f"C{i % 10}") for i, n in enumerate(points)}
    for name, (size, ratio) in points.items():
        color = palette[name]
        if name in intervals:
            a, b = intervals[name]
            ax.errorbar([size], [ratio], yerr=[[ratio - a], [b - ratio]], color=color, capsize=3)
        ax.scatter([size], [ratio], color=color, zorder=3)
    _plain_log_ticks(ax, sizes)
    ax.set_xlabel("code size (units)")
    ax.set_ylabel("held-out MSE ÷ PCA's")
    ax.set_title(title or "below the dashed line: beats PCA", loc="left")
    finish(fig)
    _label_points(ax, fig, list(points), sizes, ratios, palette)
    return finish(fig)


def _plain_log_ticks(ax, sizes: np.ndarray) -> None:
    """Log axes ticked in plain numbers: x at the code sizes, y at 1, 2, 5 × 10^k."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(FixedLocator(sorted(set(sizes.tolist()))))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_minor_locator(FixedLocator([]))
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _free(placed, left, right, bottom, h, gap, limits) -> float:
    """The bottom nearest ``bottom`` of a label ``h`` high between ``left`` and ``right`` that
    overlaps none of ``placed``: moved up past every label in its way, or down where up leaves
    the axes (``limits``)."""
    lo, hi = limits
    for step in (1, -1):
        y = bottom
        for other in sorted(placed, key=lambda b: step * b[1]):
            if left < other[2] and other[0] < right and y < other[3] and other[1] < y + h:
                y = other[3] + gap if step > 0 else other[1] - gap - h
        if lo + gap <= y and y + h <= hi - gap:
            return y
    return min(max(bottom, lo + gap), hi - gap - h)


def _label_points(ax, fig, names, xs, ys, colors) -> None:
    """Each point's name beside it (right of it, or left where the axes end), inside the axes,
    moved up (or down, near the top) until no two labels overlap, measured as drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()  # the layout, so that the axes' place on the page is final
    to_axes = ax.transAxes.inverted()
    box = ax.get_window_extent(renderer)
    gap = 0.3 * FONT_SIZE / 72 * fig.dpi  # pixels between a point and its label, and labels
    placed: list[tuple[float, float, float, float]] = []  # (left, bottom, right, top) pixels
    for i in np.argsort(ys):
        name = str(names[i])
        probe = ax.text(0, 0, name, fontsize=FONT_SIZE)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        w, h = extent.width, extent.height
        px, py = ax.transData.transform((xs[i], ys[i]))
        left = px + gap if px + gap + w <= box.x1 - gap else px - gap - w
        bottom = _free(placed, left, left + w, py - h / 2, h, gap / 3, (box.y0, box.y1))
        placed.append((left, bottom, left + w, bottom + h))
        ax.annotate(  # in the point's colour: what ties a label moved up to its point
            name, (xs[i], ys[i]), xytext=tuple(to_axes.transform((left, bottom + h / 2))),
            textcoords="axes fraction", ha="left", va="center", color=colors[names[i]],
            in_layout=False,  # placed for the layout as it is: it must not move the axes
        )  # fmt: skip
