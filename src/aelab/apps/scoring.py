"""``aelab score``: how unusual each image of a folder or data set is to a trained model.

Every image is read as the run's own images were (resized, converted to its channels) and
scored by the run's :class:`~aelab.analysis.detector.Detector`: the score (negative mean squared
reconstruction error), its conformal p-value and whether it is below the threshold
at ``fpr``. The threshold comes from normal images the model did not train on: the calibration
share an ``Autoencoder`` held out at fit, else (a run of ``aelab train``) the run's own held-out
images, or the images of ``calibrate`` when given.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aelab.analysis import anomaly
from aelab.analysis.detector import Detector
from aelab.data import ImageFolderDataset, load_dataset
from aelab.estimator import estimator_section
from aelab.runs.open import open_runs

MAP_CMAP = "inferno"


def read_images(
    source: str | os.PathLike, shape: tuple[int, int, int], data_home=None, skipped=None
):
    """Images ``(N, C, H, W)`` of ``source`` (a folder, an array file or a data set's name) at
    the run's ``shape``, and a name for each (the file's path in a folder, else its index).

    In a folder, files that are not images are left out (as every folder reader does), and so
    are image files that cannot be read: their names go into the list ``skipped``."""
    c, h, w = shape
    if Path(source).is_dir():
        folder = ImageFolderDataset(source, image_size=(h, w), channels=c)
        images, names = [], []
        for i, (name, _, _) in enumerate(folder.listing()):
            try:
                images.append(folder[i].numpy())
            except ValueError:  # unreadable: named, not scored
                if skipped is not None:
                    skipped.append(name)
                continue
            names.append(name)
        if not images:
            raise ValueError(f"data='{source}' holds no readable image files")
        return np.stack(images), names
    data = load_dataset(source, data_home=data_home, image_size=(h, w), channels=c)
    if data.image_shape != tuple(shape):
        raise ValueError(
            f"data='{source}' has images of shape {data.image_shape}; the run takes {shape}"
        )
    return data.images, [str(i) for i in range(len(data))]


@dataclasses.dataclass
class Scorer:
    """A run's detector with its threshold: what ``aelab score`` scores with."""

    detector: Detector
    fpr: float
    source: str  # where the calibration came from, for the summary line

    @property
    def threshold(self) -> float:
        return self.detector.threshold(self.fpr)

    def score(self, images: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        """One row per image: its score, conformal p-value and whether it is an outlier."""
        scores = self.detector.scores(torch.from_numpy(images))
        p = self.detector.p_values(scores)
        t = self.threshold
        return [
            {"index": i, "name": n, "score": float(s), "p_value": float(q), "outlier": bool(s < t)}
            for i, (n, s, q) in enumerate(zip(names, scores, p))
        ]


def open_scorer(
    path: str | os.PathLike, calibrate=None, data_home=None, fpr: float | None = None,
    legacy: bool = False,
) -> Scorer:  # fmt: skip
    """The run in ``path`` as a scorer: its detector (the score its estimator was fitted with,
    if one saved it), calibrated on ``calibrate`` when given, else on the calibration share an
    estimator held out at fit, else (a run of ``aelab train``) on the run's unseen normal
    images; the threshold at ``fpr`` (default: the estimator's, else 0.05)."""
    opened = open_runs(path, legacy=legacy)
    if opened.workshop is not None:
        raise ValueError(
            f"run='{path}' is a workshop; aelab score takes one of its models ({path}/NAME)"
        )
    run = next(iter(opened.runs.values()))
    section = estimator_section(run.config)
    params = section["params"]
    if len(section["sample_shape"]) == 1:
        raise ValueError(
            "the run was fitted on a table (n_samples, n_features); aelab score reads images"
        )
    if section["scaling"][0] is not None:
        raise ValueError(
            f"run='{path}' was fitted on values it scaled into [0, 1]; aelab score reads image "
            "pixels in [0, 1]: score in the data's own units with "
            "aelab.Autoencoder.load(RUN).score_samples(X)"
        )
    detector = Detector(run, score=params.get("anomaly_score", "reconstruction"))
    if fpr is None:
        fpr = params.get("contamination") or params.get("fpr", anomaly.DEFAULT_FPR)
    anomaly.check_rate(fpr, "fpr")
    shape = tuple(run.model.input_shape)
    if calibrate is not None:
        x, _ = read_images(calibrate, shape, data_home)
        detector.calibrate(torch.from_numpy(x))
        return Scorer(detector, fpr, f"{len(x)} images of {calibrate}")
    if section.get("calibration_scores") is not None:
        detector.calibrate_scores(np.asarray(section["calibration_scores"], dtype=np.float64))
        n = len(detector.calibration)
        return Scorer(detector, fpr, f"the {n} calibration samples held out at fit")
    split = open_runs(path, data=True, data_home=data_home, legacy=legacy).split
    # the run's unseen images of its training people where it kept some (DataSpec.normals;
    # its held-out people are then the unusual ones), else its held-out images
    held, what = (split.heldout, "held-out") if split.normals is None else (split.normals, "normal")
    held = held if hasattr(held, "images") else held.load()
    if not len(held):
        raise ValueError(
            f"run='{path}' holds out no images to set the threshold on; pass --calibrate DATA "
            "(normal images the model did not train on)"
        )
    detector.calibrate(torch.from_numpy(held.images))
    return Scorer(detector, fpr, f"the run's {len(held)} {what} images")


def rows_csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["index", "name", "score", "p_value", "outlier"])
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "score": f"{r['score']:.6g}", "p_value": f"{r['p_value']:.6g}",
                         "outlier": int(r["outlier"])})  # fmt: skip
    return buf.getvalue().encode("utf-8")


def error_map_pngs(scorer: Scorer, images: np.ndarray) -> list[bytes]:
    """One PNG per image: its per-pixel squared error (mean over channels), coloured on one
    scale for all images (0 to the 99.9th percentile of every pixel's error)."""
    from matplotlib import colormaps
    from PIL import Image

    maps = scorer.detector.maps(torch.from_numpy(images))  # (N, H, W)
    top = float(np.percentile(maps, 99.9)) or 1.0
    rgb = (colormaps[MAP_CMAP](np.clip(maps / top, 0, 1))[..., :3] * 255 + 0.5).astype(np.uint8)
    out = []
    for m in rgb:
        buf = io.BytesIO()
        Image.fromarray(m).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out
