"""How unusual an image is to one model: the explorer's calibrated maps.

The model's detector is calibrated once, on first use, as ``aelab score`` calibrates it when no
``--calibrate`` is given (:func:`aelab.apps.scoring.run_scorer`: the run's unseen normal images,
else its held-out images, each pixel calibrated too). An image then gets its score, p-value and
decision at the run's rate, its calibrated map on the one fixed scale of ``aelab score --maps``
(:func:`aelab.plots.maps.significance_rgb`: white is the per-pixel threshold) and the regions
that hold most of its excess error (:func:`aelab.analysis.explain.explain`). A model that
``aelab score`` cannot score with maps gets one sentence saying why, never a map.

Everything here runs in the server's model thread (the detector uses the model).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from aelab.analysis import anomaly
from aelab.analysis.explain import excess_errors, explain, pixel_reference
from aelab.apps.explorer.space import LatentSpace, png, to_uint8
from aelab.apps.scoring import Scorer, run_scorer
from aelab.plots.maps import significance_rgb


class CannotScore(ValueError):
    """The model cannot give calibrated maps (the message says why, in one sentence)."""


def data_url(pixels: np.ndarray) -> str:
    """An ``(H, W, C)`` uint8 image as a PNG data URL."""
    return "data:image/png;base64," + base64.b64encode(png(pixels)).decode("ascii")


def guarantee_line(level: float, n: int) -> str:
    """What a calibrated map promises, and what it does not, in one sentence."""
    return (
        f"On a normal image aligned like the {n} calibration images, each pixel is red "
        f"(p ≤ {level:.3g}) with probability at most {level:.3g}; this is not a test of the "
        "whole image (its score against the threshold is) and says nothing about images "
        "framed or lit differently."
    )


class Unusual:
    """The calibrated maps of ``space``'s model (calibrated on first use)."""

    def __init__(self, space: LatentSpace):
        self.space = space
        self._scorer: Scorer | None = None
        self._why: str | None = None
        self._reference: np.ndarray | None = None

    def scorer(self) -> Scorer:
        """The calibrated scorer; :class:`CannotScore` for a model ``aelab score`` refuses."""
        if self._scorer is None and self._why is None:
            run = self.space.run
            try:
                scorer = run_scorer(run, run.path or self.space.name, pixels=True,
                                    split=self.space.split)  # fmt: skip
            except ValueError as e:
                reason = (str(e).splitlines() or [type(e).__name__])[0]
                self._why = f"model={self.space.name!r} cannot give calibrated maps: {reason}"
            else:
                self._reference = pixel_reference(scorer.detector.pixel_calibration)
                self._scorer = scorer
        if self._scorer is None:
            raise CannotScore(self._why)
        return self._scorer

    def describe(self) -> dict[str, Any]:
        """Whether maps are offered (else why), their level, scale and guarantee."""
        try:
            scorer = self.scorer()
        except CannotScore as e:
            return {"available": False, "why": str(e)}
        level = scorer.pixel_level
        low, _, top = anomaly.significance_scale(level)
        ramp = significance_rgb(np.linspace(low, top, 256)[None, :].repeat(12, axis=0), level)
        return {
            "available": True,
            "fpr": scorer.fpr,
            "level": level,
            "threshold": scorer.threshold,
            "source": scorer.source,
            "scale": data_url(ramp),
            "legend": f"-log10 p per pixel: blue = as usual as the calibration images (p=1), "
            f"white = the per-pixel threshold p={level:.3g}, red = beyond it (p≤{level**2:.2g})",
            "guarantee": guarantee_line(level, len(scorer.detector.pixel_calibration)),
        }

    def judge(self, x: np.ndarray) -> dict[str, Any]:
        """One image ``(C, H, W)`` in [0, 1]: its numbers, map and explanation."""
        scorer = self.scorer()
        scored = scorer.evaluate(np.ascontiguousarray(x[None]), maps=True)
        level = scorer.pixel_level
        rgb = significance_rgb(anomaly.significance(scored.pixel_p), level)[0]
        why = explain(excess_errors(scored.maps[0], self._reference))
        regions = [{"share": r.share, "area": r.area, "box": list(r.box)} for r in why.regions]
        return {
            "score": float(scored.scores[0]),
            "p_value": float(scored.p_values[0]),
            "outlier": bool(scored.outlier[0]),
            "threshold": scorer.threshold,
            "fpr": scorer.fpr,
            "level": level,
            "image": data_url(to_uint8(x[None])[0]),
            "map": data_url(rgb),
            "explanation": {"text": why.text(), "share": why.share, "regions": regions},
        }


__all__ = ["CannotScore", "Unusual", "guarantee_line"]
