"""Measurement curves: PSNR against corruption level, anomaly scores of usual and unusual
images."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from .grid import panel_axes


def robustness(curve: Mapping, title: str = "Robustness to corruption") -> Figure:
    """Held-out PSNR against the corruption level, one panel per noise kind.

    Parameters
    ----------
    curve : dict
        :func:`aelab.robustness.corruption_curve`'s result; methods whose name starts with
        ``pca`` are drawn dashed, the corrupted input dotted black.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    kinds = list(curve["levels"])
    if not kinds:
        raise ValueError("curve has no noise kinds to draw")
    fig = Figure(figsize=(4.2 * len(kinds), 3.4), layout="constrained")
    axes = fig.subplots(1, len(kinds), squeeze=False).ravel()
    for ax, kind in zip(axes, kinds, strict=True):
        levels = curve["levels"][kind]
        for name, per_kind in curve["methods"].items():
            style = "--" if name.startswith("pca") else "-"
            ax.plot(levels, per_kind[kind], style, marker="o", ms=3, label=name)
        ax.plot(levels, curve["input"][kind], ":", color="black", label="corrupted input")
        ax.set_title(kind)
        ax.set_xlabel("level")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out PSNR (dB)")
    axes[-1].legend(fontsize="small", loc="best")
    fig.suptitle(title)
    return fig


def score_histograms(
    scores: Mapping[str, tuple[np.ndarray, np.ndarray, float | None]],
    title: str = "Anomaly scores",
) -> Figure:
    """Per model, the reconstruction errors of usual and unusual held-out images and the
    threshold between them.

    Parameters
    ----------
    scores : dict of str to (normal, unusual, threshold)
        Errors (higher = more unusual) of normal and unusual images; ``threshold`` an error
        (None: none drawn).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not scores:
        raise ValueError("scores is empty: nothing to draw")
    fig, axes = panel_axes(len(scores), 2.8)
    for ax, (name, (normal, unusual, threshold)) in zip(axes, scores.items(), strict=False):
        both = np.concatenate([normal, unusual])
        bins = np.linspace(both.min(), both.max(), 25) if np.ptp(both) > 0 else 10
        ax.hist(normal, bins=bins, alpha=0.6, label="usual (training people)")
        ax.hist(unusual, bins=bins, alpha=0.6, label="unusual (held-out people)")
        if threshold is not None and math.isfinite(threshold):
            ax.axvline(threshold, color="black", ls="--", lw=1, label="threshold")
        ax.set_title(name)
        ax.set_xlabel("reconstruction error")
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    return fig
