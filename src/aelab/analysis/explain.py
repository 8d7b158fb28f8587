"""Why is this image unusual? Where its reconstruction error exceeds what normal images show.

An image's *excess error* at a pixel is its squared error there above the median error of the
calibration normals at that pixel (:func:`excess_errors`): zero where the pixel is as well
reconstructed as a typical normal image's, large where it is not. :func:`explain` finds the few
regions that hold most of it: the pixels where the (lightly smoothed) excess map is at least a
quarter of its peak, joined into connected regions (8-neighbours), ranked by the share of the
image's whole excess error each one holds. An anomaly confined to one place gives one small
region with a large share; errors spread over the image give many small shares or a region as
large as the image, and the explanation says so by its numbers.

Pure functions of arrays; :mod:`aelab.analysis.detector` computes the maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOP_REGIONS = 3  # regions an explanation names
OF_PEAK = 0.25  # a region's pixels: the smoothed excess error at least this share of its peak


@dataclass(frozen=True)
class Region:
    """A connected region of an image's excess error."""

    share: float  # of the image's excess error, in [0, 1]
    area: float  # share of the image's pixels
    box: tuple[int, int, int, int]  # (top, left, bottom, right), 0-based, inclusive


@dataclass(frozen=True)
class Explanation:
    """Where an image's excess error sits: its total and its top regions, largest share first."""

    excess: float  # the sum of the excess error over the pixels
    regions: tuple[Region, ...]

    @property
    def share(self) -> float:
        """The share of the excess error in the regions named."""
        return float(sum(r.share for r in self.regions))

    def text(self) -> str:
        """One sentence: ``"71% of its excess error in 2 regions (6% of the image): rows 3-9,
        columns 12-20 (58%); rows 0-1, columns 4-6 (13%)"``."""
        if not self.regions:
            return "no pixel's error is above the normal images' median error there"
        area = sum(r.area for r in self.regions)
        many = "region" if len(self.regions) == 1 else f"{len(self.regions)} regions"
        parts = "; ".join(
            f"{_span('row', r.box[0], r.box[2])}, {_span('column', r.box[1], r.box[3])} "
            f"({r.share:.0%})"
            for r in self.regions
        )
        return f"{self.share:.0%} of its excess error in {many} ({area:.0%} of the image): {parts}"


def _span(what: str, first: int, last: int) -> str:
    return f"{what} {first}" if first == last else f"{what}s {first}-{last}"


def pixel_reference(calibration: np.ndarray) -> np.ndarray:
    """The median error ``(H, W)`` of the calibration normals at each pixel (``calibration``:
    their per-pixel errors ``(n, H, W)``)."""
    return np.median(np.asarray(calibration, dtype=np.float64), axis=0)


def excess_errors(maps: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each image's error above ``reference`` at each pixel, ``max(0, map - reference)``."""
    return np.maximum(np.asarray(maps, dtype=np.float64) - reference, 0.0)


def explain(excess: np.ndarray, top: int = TOP_REGIONS, of_peak: float = OF_PEAK) -> Explanation:
    """The regions of one image's excess error map ``(H, W)`` that hold most of it.

    The map is smoothed by a Gaussian of ``max(0.5, min(H, W) / 32)`` pixels (so that one
    anomaly's scattered pixels join one region); its pixels at least ``of_peak`` of the smoothed
    map's largest value are joined into 8-connected regions, and the ``top`` regions holding the
    most of the *unsmoothed* excess error are named with their share of it, area and bounding
    box.
    """
    from scipy import ndimage

    e = np.asarray(excess, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"excess has shape {e.shape}; expected one image's map (H, W)")
    if not np.isfinite(e).all() or (e < 0).any():
        raise ValueError("excess must be finite and >= 0 (see excess_errors)")
    total = float(e.sum())
    if total <= 0:
        return Explanation(0.0, ())
    sigma = max(0.5, min(e.shape) / 32)
    smooth = ndimage.gaussian_filter(e, sigma, mode="nearest")
    chosen = smooth >= of_peak * smooth.max()
    labels, count = ndimage.label(chosen, structure=np.ones((3, 3)))
    index = np.arange(1, count + 1)
    shares = np.asarray(ndimage.sum(e, labels, index)) / total
    areas = np.asarray(ndimage.sum(np.ones_like(e), labels, index)) / e.size
    boxes = ndimage.find_objects(labels)
    ranked = sorted(range(count), key=lambda i: (-shares[i], i))[:top]
    regions = tuple(
        Region(float(shares[i]), float(areas[i]),
               (boxes[i][0].start, boxes[i][1].start, boxes[i][0].stop - 1, boxes[i][1].stop - 1))
        for i in ranked
    )  # fmt: skip
    return Explanation(total, regions)


__all__ = ["Explanation", "Region", "excess_errors", "explain", "pixel_reference"]
