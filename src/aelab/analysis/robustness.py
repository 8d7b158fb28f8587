"""Robustness to corruption: the notebook's denoising panel made a measurement.

For every noise kind (:data:`aelab.noise.NOISE_KINDS`) and level, held-out images are corrupted
once (the same draw for every method) and each method reconstructs them; the curve is the PSNR
of each reconstruction against the *clean* image, beside the corrupted input's own PSNR (what
doing nothing gives) and PCA's at each model's code size. A model trained to denoise should sit
above the others at the levels it was trained for; :func:`shortfalls` says where it does not.

Pure: methods come in as callables from images to images, so nothing here knows a model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from aelab.analysis.metrics import psnr
from aelab.analysis.stacks import stacks
from aelab.training.noise import Noise

LEVELS: dict[str, tuple[float, ...]] = {
    "gaussian": (0.0, 0.05, 0.1, 0.2, 0.3, 0.5),  # standard deviation
    "saltpepper": (0.0, 0.05, 0.1, 0.2, 0.3, 0.5),  # share of pixels set to 0 or 1
    "mask": (0.0, 0.05, 0.1, 0.2, 0.3, 0.5),  # share of pixels set to 0
}

Reconstruct = Callable[[np.ndarray], np.ndarray]
STACK_BYTES = 64 * 2**20  # corrupted copies of the images reconstructed in one call, at most


def corrupt(x: np.ndarray, kind: str, level: float, seed: int = 0) -> np.ndarray:
    """``x`` corrupted by ``kind`` at ``level`` (0: a copy of ``x``), seeded."""
    if level == 0:
        return np.array(x, copy=True)
    g = torch.Generator().manual_seed(seed)
    return Noise(kind, level)(torch.from_numpy(np.ascontiguousarray(x)), generator=g).numpy()


def corruption_curve(
    methods: Mapping[str, Reconstruct],
    x: np.ndarray,
    *,
    levels: Mapping[str, tuple[float, ...]] = LEVELS,
    seed: int = 0,
    clean: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Held-out PSNR (dB) of each method's reconstruction of corrupted ``x`` against ``x``.

    Parameters
    ----------
    methods : mapping of name to callable
        Each maps corrupted images ``(N, C, H, W)`` to reconstructions of the same shape
        (a model's ``reconstruct``; PCA's projection, clipped to the pixel range), each image
        on its own: it is called with several corrupted copies of ``x`` stacked.
    x : ndarray
        Clean held-out images in ``[0, 1]``.
    levels : mapping of kind to levels
        Default :data:`LEVELS`; level 0 is the clean input.
    seed : int
        Seeds the corruption of each (kind, level) pair; every method sees the same draw.
    clean : mapping of name to array, optional
        Reconstructions of ``x`` itself (level 0) that a method has already made, as its
        callable would make them: used instead of making them again (a report has every
        model's held-out reconstructions before it draws the curve).

    Returns
    -------
    dict
        ``{"levels": {kind: [...]}, "input": {kind: [dB...]}, "methods": {name: {kind:
        [dB...]}}}``; ``input`` is the corrupted image itself, clipped to ``[0, 1]``.
    """
    x = np.asarray(x, dtype=np.float32)
    out: dict[str, Any] = {"levels": {}, "input": {}, "methods": {n: {} for n in methods}}
    # every distinct input once: level 0 of every kind is the same clean copy of x
    inputs: list[np.ndarray] = [x]
    where: dict[str, list[int]] = {}
    for i, (kind, kind_levels) in enumerate(levels.items()):
        out["levels"][kind] = [float(v) for v in kind_levels]
        out["input"][kind], where[kind] = [], []
        for j, level in enumerate(kind_levels):
            if level == 0:
                noisy, at = x, 0
            else:
                noisy, at = corrupt(x, kind, float(level), seed=seed + 1000 * i + j), len(inputs)
                inputs.append(noisy)
            out["input"][kind].append(psnr(x, np.clip(noisy, 0.0, 1.0)))
            where[kind].append(at)
    clean = clean or {}
    for name, reconstruct in methods.items():
        if name in clean:  # level 0 known: only the corrupted inputs are reconstructed
            made = [np.asarray(clean[name]), *_stacked(reconstruct, inputs[1:])]
        else:
            made = _stacked(reconstruct, inputs)
        scores = [psnr(x, x_hat) for x_hat in made]
        out["methods"][name] = {kind: [scores[at] for at in ats] for kind, ats in where.items()}
    return out


def _stacked(reconstruct: Reconstruct, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """``reconstruct`` of each of ``inputs`` (equal shapes), called on as many of them stacked
    as :data:`STACK_BYTES` allows: a model reconstructs one large batch faster than many small
    ones (an encoder that searches for each code most of all)."""
    out: list[np.ndarray] = []
    if not inputs:
        return out
    for part in stacks(len(inputs), inputs[0].nbytes, STACK_BYTES):
        chunk = inputs[part]
        x_hat = np.asarray(reconstruct(np.concatenate(chunk)))
        out.extend(np.split(x_hat, len(chunk)))
    return out


def standings(curve: Mapping[str, Any], name: str, rivals: list[str]) -> dict[str, list[dict]]:
    """Where method ``name`` (a denoising model) stands at each level above 0 of each kind:
    ``{kind: [{"level", "psnr", "input", "rival", "rival_psnr", "below_input"}, ...]}``.

    ``rival`` is the best of ``rivals`` clearly above it (None: none is), ``below_input``
    whether it is no better than the corrupted input itself. Where the curve has the spread of
    several seeds (``curve["spread"]``), a difference counts only when it clears its 95%
    interval (Welch's, conservatively on the fewer seeds' degrees of freedom); with one seed
    each, any difference counts."""
    spread = curve.get("spread", {})

    def margin(a: str, b: str | None, kind: str, k: int) -> float:
        parts = [spread[m] for m in (a, b) if m in spread]
        if not parts:
            return 0.0
        var = sum(p["std"][kind][k] ** 2 / p["n"] for p in parts)
        df = min(p["n"] for p in parts) - 1
        from scipy import stats

        return float(stats.t.ppf(0.975, df)) * math.sqrt(var)

    out: dict[str, list[dict]] = {}
    for kind, kind_levels in curve["levels"].items():
        mine = curve["methods"][name][kind]
        out[kind] = []
        for k, level in enumerate(kind_levels):
            if level == 0:
                continue
            clear = {
                r: curve["methods"][r][kind][k]
                for r in rivals
                if r != name and curve["methods"][r][kind][k] - mine[k] > margin(r, name, kind, k)
            }
            best = max(clear, key=clear.get) if clear else None
            noisy = curve["input"][kind][k]
            out[kind].append({
                "level": float(level), "psnr": mine[k], "input": noisy, "rival": best,
                "rival_psnr": None if best is None else clear[best],
                "below_input": mine[k] <= noisy + margin(name, None, kind, k),
            })  # fmt: skip
    return out


def shortfalls(curve: Mapping[str, Any], name: str, rivals: list[str]) -> list[str]:
    """Where method ``name`` (a denoising model) is not the best of ``rivals`` + itself, or
    not better than the corrupted input, at a level above 0: one phrase each (from
    :func:`standings`, whose intervals it follows)."""
    notes = []
    for kind, rows in standings(curve, name, rivals).items():
        for row in rows:
            where, mine = f"{kind}:{row['level']:g}", row["psnr"]
            if row["rival"] is not None:
                notes.append(
                    f"{where}: {row['rival']} {row['rival_psnr']:.1f} dB above its {mine:.1f} dB"
                )
            elif row["below_input"]:
                notes.append(
                    f"{where}: {mine:.1f} dB, no better than the corrupted input's "
                    f"{row['input']:.1f} dB"
                )
    return notes


__all__ = ["LEVELS", "corrupt", "corruption_curve", "shortfalls", "standings"]
