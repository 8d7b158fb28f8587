"""Charts: learning curves, activation bars and the scatter maps of codes and pixels."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

from .grid import (
    _ALIVE_COLOR,
    _DEAD_COLOR,
    _numeric,
    panel_axes,
)


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
        Model name to its history records ``{"epoch", "loss", "heldout_loss", ...}``, or to a
        list of histories, one per seed: their mean is drawn, in a band from the lowest to the
        highest seed; ``heldout_loss`` may be None (no held-out line then, or gaps); a
        ``validation_loss`` (the images that chose the epoch) is drawn dotted where there is
        one.
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
    fig, axes = panel_axes(len(histories), 3.0)
    for ax, (name, records) in zip(axes, histories.items(), strict=False):
        ax.set_title(str(name))
        ax.set_xlabel("epoch")
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
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


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


def pca_ratio(points: Mapping[str, tuple[int, float]], title: str | None = None) -> Figure:
    """Each model's held-out error divided by PCA's at the same code size, against code size.

    Parameters
    ----------
    points : dict of str to (int, float)
        Model name to ``(code size, error ratio)``; a ratio below 1 beats PCA.
    title : str, optional
    """
    if not isinstance(points, Mapping) or not points:
        raise ValueError(
            f"points must be a non-empty dict of name to (size, ratio), got {points!r}"
        )
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots()
    sizes = np.asarray([float(p[0]) for p in points.values()])
    ratios = np.asarray([float(p[1]) for p in points.values()])
    if np.any(sizes <= 0) or not np.all(np.isfinite(ratios)) or np.any(ratios <= 0):
        raise ValueError("points need code sizes >= 1 and finite ratios > 0")
    ax.axhline(1.0, color="0.4", lw=1, ls="--")
    ax.axhspan(min(ratios.min(), 1.0) * 0.9, 1.0, color="C2", alpha=0.08, lw=0)
    for i, (name, (size, ratio)) in enumerate(points.items()):
        ax.scatter([size], [ratio], color=f"C{i % 10}", zorder=3)
        ax.annotate(str(name), (size, ratio), textcoords="offset points", xytext=(5, 4))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("code size (units)")
    ax.set_ylabel("held-out MSE / PCA's")
    ax.text(0.01, 0.02, "below the line: beats PCA", transform=ax.transAxes, color="C2")
    ax.set_title(title or "Error against PCA at the same code size")
    return fig
