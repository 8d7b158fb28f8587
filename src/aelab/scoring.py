"""``aelab score``: how unusual each image of a folder or data set is to a trained model.

Every image is read as the run's own images were (resized, converted to its channels) and
scored by :class:`aelab.Autoencoder` (:mod:`aelab.estimator._outliers`): the score (negative
mean squared reconstruction error), its conformal p-value and whether it is below the threshold
at ``fpr``. The threshold comes from normal images the model did not train on: the calibration
share an ``Autoencoder`` held out at fit, else (a run of ``aelab train``) the run's own held-out
images, or the images of ``calibrate`` when given.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import anomaly
from .data import ImageFolderDataset, load_dataset
from .estimator import Autoencoder

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


def _as_samples(est: Autoencoder, images: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` images in the layout the estimator was fitted on."""
    shape = est.sample_shape_
    if len(shape) == 1:
        raise ValueError(
            "the run was fitted on a table (n_samples, n_features); aelab score reads images"
        )
    if est.data_format == "channels_first":
        return images
    x = images.transpose(0, 2, 3, 1)
    return x[..., 0] if len(shape) == 2 else x


def open_detector(
    run: str | os.PathLike, calibrate=None, data_home=None
) -> tuple[Autoencoder, str]:
    """The run as an estimator with a threshold, and where its calibration came from."""
    est = Autoencoder.load(run, device="cpu")
    shape = tuple(est.input_shape_)
    if calibrate is not None:
        x, _ = read_images(calibrate, shape, data_home)
        est.set_threshold(_as_samples(est, x))
        return est, f"{len(x)} images of {calibrate}"
    if getattr(est, "_calibration_scores", None) is not None:
        return est, f"the {len(est._calibration_scores)} calibration samples held out at fit"
    from .runs import load_run

    split = load_run(run).data(data_home, carve=False)
    # the run's unseen images of its training people where it kept some (DataSpec.normals;
    # its held-out people are then the unusual ones), else its held-out images
    held, what = (split.heldout, "held-out") if split.normals is None else (split.normals, "normal")
    held = held if hasattr(held, "images") else held.load()
    if not len(held):
        raise ValueError(
            f"run='{run}' holds out no images to set the threshold on; pass --calibrate DATA "
            "(normal images the model did not train on)"
        )
    est.set_threshold(_as_samples(est, held.images))
    return est, f"the run's {len(held)} {what} images"


def score(est: Autoencoder, images: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    scores = est.score_samples(_as_samples(est, images))
    p = anomaly.p_values(est._calibration(), scores)  # one pass of the model, not two
    t = est.threshold_
    return [
        {"index": i, "name": n, "score": float(s), "p_value": float(q), "outlier": bool(s < t)}
        for i, (n, s, q) in enumerate(zip(names, scores, p))
    ]


def rows_csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["index", "name", "score", "p_value", "outlier"])
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "score": f"{r['score']:.6g}", "p_value": f"{r['p_value']:.6g}",
                         "outlier": int(r["outlier"])})  # fmt: skip
    return buf.getvalue().encode("utf-8")


def error_map_pngs(est: Autoencoder, images: np.ndarray) -> list[bytes]:
    """One PNG per image: its per-pixel squared error (mean over channels), coloured on one
    scale for all images (0 to the 99.9th percentile of every pixel's error)."""
    from matplotlib import colormaps
    from PIL import Image

    maps = est.error_map(_as_samples(est, images))
    if maps.ndim == 4:  # (N, C, H, W) or (N, H, W, C): the mean over the channels
        maps = maps.mean(axis=1 if est.data_format == "channels_first" else 3)
    top = float(np.percentile(maps, 99.9)) or 1.0
    rgb = (colormaps[MAP_CMAP](np.clip(maps / top, 0, 1))[..., :3] * 255 + 0.5).astype(np.uint8)
    out = []
    for m in rgb:
        buf = io.BytesIO()
        Image.fromarray(m).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out
