"""Charts: learning curves, activation bars and the scatter maps of codes and pixels."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

from .grid import (
    _ALIVE_COLOR,
    _DEAD_COLOR,
    _numeric,
    panel_axes,
)
from .style import FONT_SIZE, finish


def learning_curves(
    histories: Mapping[str, Sequence[Mapping]],
    title: str | None = "Learning curves",
    *,
    log_y: bool = False,
    cols: int = 3,
) -> Figure:
    """Training loss (solid) and held-out loss (dashed) per epoch, one panel per model.

    Panels have their own y axes, since models' losses differ in kind (binary cross-entropy,
    squared error, a VAE's evidence bound).

    Parameters
    ----------
    histories : dict of str to list of dict
        Model name to its history records ``{"epoch", "loss", "heldout_loss", ...}``, or to a
        list of histories, one per seed: their mean is drawn, in a band from the lowest to the
        highest seed; ``heldout_loss`` may be None (no held-out line then, or gaps); a
        ``validation_loss`` (the images that chose the epoch) is drawn dotted where there is
        one.
    title : str or None
        Figure title.
    log_y : bool, default False
        Logarithmic loss axes.
    cols : int, default 3
        Panels per row (1 for a phone's screen).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per model, up to ``cols`` per row.
    """
    if not isinstance(histories, Mapping) or not histories:
        raise ValueError(
            f"histories must be a non-empty dict of model name to records, got {histories!r}"
        )
    fig, axes = panel_axes(len(histories), 2.6, width=3.4 if cols > 1 else 3.5, cols=cols)
    for ax, (name, records) in zip(axes, histories.items(), strict=False):
        ax.set_title(str(name))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss")
        if not records:
            ax.text(
                0.5, 0.5, "no epochs recorded", ha="center", va="center", transform=ax.transAxes
            )
            continue
        runs = records if isinstance(records[0], (list, tuple)) else [records]
        for run in runs:
            for key in ("epoch", "loss", "heldout_loss"):
                if any(key not in r for r in run):
                    raise ValueError(
                        f"histories[{name!r}] has a record without {key!r}; records "
                        "need 'epoch', 'loss' and 'heldout_loss'"
                    )
        seeds = f" (mean of {len(runs)} seeds)" if len(runs) > 1 else ""
        for key, style, color, label in (
            ("loss", "-", "C0", "training"),
            ("heldout_loss", "--", "C1", "held-out"),
            ("validation_loss", ":", "C2", "validation"),
        ):
            epochs, values = _by_epoch(runs, key)
            if not len(epochs) or np.all(np.isnan(values)):
                continue
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an epoch no seed reached
                mean = np.nanmean(values, axis=0)
                lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
            ax.plot(epochs, mean, style, color=color, label=label + seeds)
            if len(runs) > 1:  # every seed within the band: its lowest and highest loss
                ax.fill_between(epochs, lo, hi, color=color, alpha=0.2, linewidth=0)
        if log_y:
            ax.set_yscale("log")
    handles = {}  # one legend for every panel: each line style once
    for ax in axes:
        for line in ax.get_lines():
            handles.setdefault(line.get_label(), line)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center",
                   ncols=min(3, len(handles)) if min(cols, len(histories)) > 1 else 1,
                   frameon=False)  # fmt: skip
    if title:
        fig.suptitle(title)
    return finish(fig)


def _by_epoch(runs: Sequence[Sequence[Mapping]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """The epochs any run recorded, and ``key`` of each run at each (NaN where a run has none)."""
    epochs = np.array(sorted({r["epoch"] for run in runs for r in run}), dtype=float)
    where = {e: i for i, e in enumerate(epochs)}
    values = np.full((len(runs), len(epochs)), np.nan)
    for j, run in enumerate(runs):
        for r in run:
            v = r.get(key)
            if v is not None:
                values[j, where[r["epoch"]]] = v
    return epochs, values


def activation_bars(
    max_act: ArrayLike,
    dead: ArrayLike,
    title: str | None = "Maximum activation per latent unit",
    *,
    ylabel: str = "maximum activation",
    dead_word: str = "dead",
    threshold: float | None = None,
    log_y: bool = False,
    width: float | None = None,
) -> Figure:
    """One bar per latent unit with its maximum activation; dead units in red, marked ×.

    Parameters
    ----------
    max_act : array_like, shape (D,)
        Per-unit maximum over the data (:func:`aelab.metrics.max_activation`), or any per-unit
        number (a VAE's mean KL per unit, with ``ylabel`` saying so).
    dead : array_like of bool, shape (D,)
        Dead units (:func:`aelab.metrics.dead_units`), marked on the axis too.
    title : str or None
        Start of the title, which goes on with "<k> of <D> units <dead_word>" (None: only that).
    ylabel : str
        The bars' axis label.
    dead_word : str, default "dead"
        What a marked unit is called ("inactive" for a VAE's units below a KL threshold).
    threshold : float, optional
        A dashed line at this value (the threshold that decided ``dead``).
    log_y : bool, default False
        A logarithmic bar axis (numbers that span decades, as KLs do).
    width : float, optional
        Inches; by default from the number of units, 3.2 to 7.

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
    counted = f"{int(dead.sum())} of {units} units {dead_word}"
    counted += " (red, ×)" if dead.any() else ""
    heading = f"{title}: {counted}" if title else counted
    if width is None:  # from the bars, and never narrower than the title (0.6 em a character)
        width = max(min(7.0, max(3.2, 0.05 * units + 2.2)), len(heading) * 0.6 * FONT_SIZE / 72)
    fig = Figure(figsize=(width, 2.8), layout="constrained")
    ax = fig.subplots()
    colors = np.where(dead, _DEAD_COLOR, _ALIVE_COLOR)
    heights = np.maximum(max_act, 1e-12) if log_y else max_act
    ax.bar(np.arange(units), heights, color=colors, width=0.8)
    if log_y:
        ax.set_yscale("log")
    if threshold is not None:
        ax.axhline(threshold, color="0.3", ls="--", lw=1)
    # A dead ReLU unit's bar has height 0: mark dead units on the axis so they show anyway.
    dead_x = np.flatnonzero(dead)
    ax.plot(dead_x, np.zeros(dead_x.size), "x", color=_DEAD_COLOR, ms=6, clip_on=False,
            transform=ax.get_xaxis_transform())  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("code unit")
    ax.set_ylabel(ylabel)
    ax.set_xlim(-0.6, units - 0.4)
    ax.set_title(heading)  # the colour says which units, instead of a legend over the bars
    return finish(fig)


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
    title: str | None,
    axis_labels: tuple[str, str] | None,
    cols: int | None = None,
    side: float = 3.2,
    label_name: str = "label",
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

    n_cols = len(points) if cols is None else max(1, min(int(cols), len(points)))
    n_rows = -(-len(points) // n_cols)
    bar = 0.9 if colors is not None else 0.0
    fig = Figure(figsize=(side * n_cols + bar, side * n_rows + (0.3 if title else 0.0)),
                 layout="constrained")  # fmt: skip
    grid = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in grid[len(points) :]:
        ax.set_axis_off()
    axes = grid[: len(points)]
    size = float(np.clip(6000.0 / n, 3.0, 20.0)) * (side / 3.6) ** 2
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
        if axis_labels is None:  # coordinates without a meaning (t-SNE, PCA): no ticks
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.set_xlabel(axis_labels[0])
            ax.set_ylabel(axis_labels[1])
    if colors is not None:
        bar = fig.colorbar(mappable, ax=list(axes), ticks=colors["ticks"], label=label_name)
        if colors["ticklabels"] is not None:
            ticks = [str(v) for v in colors["ticklabels"]]
            if len(ticks) > 10:  # one label in every few, so that they never overlap
                ticks = [t if i % -(-len(ticks) // 10) == 0 else "" for i, t in enumerate(ticks)]
            bar.set_ticklabels(ticks)
    if title:
        fig.suptitle(title)
    return finish(fig)


def embedding_panels(
    panels: Sequence[tuple[str, ArrayLike]],
    labels: ArrayLike | None,
    title: str | None = "2-D maps of images and codes",
    *,
    cols: int | None = None,
    panel: float = 2.4,
    label_name: str = "label",
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
    title : str or None
        Figure title.
    cols : int, optional
        Panels per row (default: all in one row).
    panel : float, default 2.4
        Each panel's side in inches.
    label_name : str, default "label"
        What the colours are ("digit", "person"), on the colour bar.

    Returns
    -------
    matplotlib.figure.Figure
        One scatter axes per panel (no ticks: the coordinates of a 2-D map mean nothing on
        their own), plus the colour bar's axes when labels are given.
    """
    return _scatter_panels(panels, labels, title, None, cols, panel, label_name)


def latent_scatter(
    z2: ArrayLike,
    labels: ArrayLike | None,
    title: str | None = "Latent codes",
    *,
    label_name: str = "label",
) -> Figure:
    """The 2-D codes of a two-unit (variational) autoencoder, coloured by label.

    Parameters
    ----------
    z2 : array_like, shape (N, 2)
        The codes (for a VAE, the means).
    labels : array_like, shape (N,), or None
        Colours, as in :func:`embedding_panels`, with a colour bar.
    title : str or None
        Figure title.
    label_name : str, default "label"
        What the colours are, on the colour bar.

    Returns
    -------
    matplotlib.figure.Figure
        One scatter axes with axes labelled z[0] and z[1], plus the colour bar's axes.
    """
    return _scatter_panels([("", z2)], labels, title, ("z[0]", "z[1]"), None, 3.4, label_name)
