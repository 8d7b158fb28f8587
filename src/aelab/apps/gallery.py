"""``aelab score --gallery N``: one self-contained HTML page with the N most normal and the N
most unusual images of a scored set, each beside its calibrated map with the regions that hold
most of its excess error outlined, and a sentence saying where that error sits
(:func:`aelab.analysis.explain.explain`).

Every map is on the one fixed scale of the per-pixel level (:mod:`aelab.plots.maps`), so the
most normal image's map and the most unusual one's can be compared by eye. Images are inline
PNGs (the page needs no network); names are HTML-escaped (a file named ``<script>.png`` is text).
"""

from __future__ import annotations

import base64
import html
from numbers import Integral

import numpy as np

from aelab.analysis import anomaly
from aelab.analysis.explain import excess_errors, explain, pixel_reference
from aelab.apps.scoring import Images, Scored, Scorer, png, shown_name
from aelab.plots.maps import outlined, significance_rgb

MAX_GALLERY = 100  # images in each row of the page: 200 images with their maps at most
SHOWN_PIXELS = 96  # a small image is enlarged (each pixel a block) to at least this


def check_gallery(n) -> int:
    """``n`` if it is a whole number of images from 1 to :data:`MAX_GALLERY`."""
    if isinstance(n, bool) or not isinstance(n, Integral) or not 1 <= n <= MAX_GALLERY:
        raise ValueError(
            f"gallery={n!r} is not valid; expected a whole number from 1 to {MAX_GALLERY} (the "
            "most normal and the most unusual images shown, each)"
        )
    return int(n)


def guarantee(scorer: Scorer) -> str:
    """What a calibrated map does and does not promise, in words (under every map)."""
    level, n = scorer.pixel_level, len(scorer.detector.pixel_calibration)
    if scorer.map_correction == "bonferroni":
        promise = (
            f"a normal image has any pixel at or above the middle (p ≤ {level:.3g}, the rate "
            f"{scorer.fpr:g} shared among the {scorer.detector.pixel_calibration[0].size} pixels) "
            f"with probability at most {scorer.fpr:g}"
        )
    else:
        promise = (
            f"each pixel of a normal image is at or above the middle (p ≤ {level:.3g}) with "
            f"probability at most {level:.3g}: on average at most that share of a normal "
            "image's pixels is red, and a normal image is expected to have some"
        )
    return (
        f"Each pixel's error is compared with the same pixel's errors on the {n} calibration "
        f"images (a conformal p-value); the colour is -log10 p on one fixed scale for every "
        f"image, white at the threshold. If the images are aligned as the calibration images "
        f"are and a normal image is exchangeable with them, {promise}. A red pixel is not proof "
        "of a defect, the maps say nothing of images unlike the calibration images in framing "
        "or lighting, and the image's own decision is its score against the threshold."
    )


def _data_uri(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png(rgb)).decode("ascii")


def _shown(image: np.ndarray, boxes, scale: int) -> np.ndarray:
    """An image ``(C, H, W)`` in [0, 1] as enlarged RGB uint8."""
    channels = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    rgb = (np.clip(channels.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)
    return outlined(rgb, boxes, scale)


def _scale_bar(level: float) -> str:
    low, _, top = anomaly.significance_scale(level)
    ramp = np.linspace(low, top, 256)[None, :].repeat(12, axis=0)
    return _data_uri(significance_rgb(ramp, level))


def gallery_html(images: Images, scored: Scored, scorer: Scorer, n: int) -> bytes:
    """The page for the ``n`` most normal and ``n`` most unusual of ``images`` (scored with
    maps), as UTF-8 bytes."""
    n = check_gallery(n)
    level = scorer.pixel_level
    reference = pixel_reference(scorer.detector.pixel_calibration)
    h, w = scored.maps.shape[1:]
    scale = max(1, -(-SHOWN_PIXELS // max(h, w)))
    significance = anomaly.significance(scored.pixel_p)
    normal, unusual = anomaly.extremes(scored.scores, n)
    rows = []
    for title, picked in (("Most normal", normal), ("Most unusual", unusual)):
        cards = []
        for i in picked:
            why = explain(excess_errors(scored.maps[i], reference))
            boxes = [r.box for r in why.regions]
            verdict = "outlier" if scored.outlier[i] else "normal"
            shown_map = outlined(significance_rgb(significance[i], level), boxes, scale)
            cards.append(
                f'<figure class="{verdict}">'
                f'<img src="{_data_uri(_shown(images.x[i], boxes, scale))}" alt="image">'
                f'<img src="{_data_uri(shown_map)}" alt="calibrated map">'
                f"<figcaption><b>{html.escape(shown_name(images.names[i]))}</b><br>"
                f"score {scored.scores[i]:.4g}, p {scored.p_values[i]:.3g}: {verdict}<br>"
                f"{html.escape(why.text())}</figcaption></figure>"
            )
        rows.append(f"<h2>{title}</h2><div class=row>{''.join(cards)}</div>")
    low, _, top = anomaly.significance_scale(level)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aelab score: gallery</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1.5em; max-width: 90em; }}
.row {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; width: {2 * scale * w + 8}px; }}
figure img {{ image-rendering: pixelated; margin-right: 4px; }}
figcaption {{ font-size: 12px; overflow-wrap: anywhere; }}
.outlier b {{ color: #b2182b; }}
.scale img {{ width: 256px; height: 12px; vertical-align: middle; }}
</style></head><body>
<h1>{len(scored.scores)} images scored: the {n} most normal and the {n} most unusual</h1>
<p>Threshold {scorer.threshold:.6g} at fpr={scorer.fpr:g}, from {html.escape(scorer.source)}.
Each image is shown beside its calibrated map; the outlined regions hold the share of its excess
error (its error above the calibration images' median error at each pixel) that its caption
gives.</p>
<p class=scale>p=1 <img src="{_scale_bar(level)}" alt="colour scale"> p≤{level * level:.2g}
(middle, white: p={level:.3g}, the per-pixel threshold; -log10 p from {low:g} to {top:.3g})</p>
<p>{html.escape(guarantee(scorer))}</p>
{"".join(rows)}
</body></html>
"""
    return page.encode("utf-8")


__all__ = ["MAX_GALLERY", "check_gallery", "gallery_html", "guarantee"]
