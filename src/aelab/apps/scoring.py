"""``aelab score``: how unusual each image of a folder or data set is to a trained model.

Every image is read as the run's own images were (resized, converted to its channels) and
scored by the run's :class:`~aelab.analysis.detector.Detector`: the score (negative mean squared
reconstruction error), its conformal p-value and whether it is below the threshold
at ``fpr``. The threshold comes from normal images the model did not train on: the calibration
share an ``Autoencoder`` held out at fit, else (a run of ``aelab train``) the run's own held-out
images, or the images of ``calibrate`` when given; a calibration too small for the rate (whose
threshold would be ``-inf``, flagging nothing) is refused. With ``pixels``, the calibration
images also calibrate each pixel, and every image gets a calibrated map: each pixel's conformal
p-value against the same pixel's errors on the calibration images, coloured on one fixed scale
whose middle is the per-pixel threshold (:mod:`aelab.plots.maps`).

Names are written as the file system gives them, bytes that are not UTF-8 as backslash escapes;
in the CSV, a name a spreadsheet would run as a formula is quoted (OWASP's rule); error maps are
named after their files. What a folder holds besides images is named with why it was skipped.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aelab.analysis import anomaly
from aelab.analysis.detector import Detector, too_few_to_calibrate
from aelab.data import ImageFolderDataset, load_dataset
from aelab.estimator import estimator_section
from aelab.plots.maps import significance_rgb
from aelab.runs.open import open_runs

# A cell starting so is a formula to a spreadsheet (OWASP, "CSV Injection"): a file named
# "=HYPERLINK(...).png" would run when the CSV is opened
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SHOWN = 3  # names shown per kind of skipped file on the summary line


def shown_name(name: str) -> str:
    """``name`` in a form that can be written: bytes of a file name that are not UTF-8 (which
    the file system gives as surrogate escapes) as backslash escapes (``b"\\xff"`` as
    ``\\xff``); everything else as it is."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def one_line_name(name: str) -> str:
    """:func:`shown_name` with control characters (a newline, a tab) escaped too: a name in a
    message that must stay on one line."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
        for c in shown_name(name)
    )


def csv_cell(text: str) -> str:
    """``text`` safe in a spreadsheet: one starting as a formula starts (:data:`FORMULA_START`)
    gets a leading single quote, OWASP's rule against CSV injection."""
    return "'" + text if text.startswith(FORMULA_START) else text


@dataclasses.dataclass
class Images:
    """What :func:`read_images` read: the images, a name for each, what it passed over."""

    x: np.ndarray  # (N, C, H, W)
    names: list[str]  # each file's path in the folder, as the file system gives it; else index
    files: bool  # the names are files of a folder (else indices of an array or a data set)
    skipped: list[tuple[str, list[str]]]  # (what they are and why skipped, names)

    def skipped_line(self) -> str:
        """The skipped files for the summary line: each kind, why, how many and the first
        names; empty when nothing was skipped."""
        parts = []
        for what, names in self.skipped:
            shown = ", ".join(one_line_name(n) for n in names[:SHOWN])
            parts.append(f"{len(names)} {what}: {shown}" + (", ..." if len(names) > SHOWN else ""))
        return "; ".join(parts)


# what a skipped file is, from its lstat mode: (one, many, why)
_SPECIAL = (
    (stat.S_ISFIFO, "FIFO", "FIFOs", "not a regular file"),
    (stat.S_ISSOCK, "socket", "sockets", "not a regular file"),
    (stat.S_ISCHR, "character device", "character devices", "not a regular file"),
    (stat.S_ISBLK, "block device", "block devices", "not a regular file"),
)


def _kind_of(root: Path, name: str) -> tuple[str, str, str]:
    try:
        mode = os.lstat(root / name).st_mode  # never opened: a FIFO would block
    except OSError:
        return "file", "files", "gone since listed"
    for test, one, many, why in _SPECIAL:
        if test(mode):
            return one, many, why
    if os.path.basename(name).startswith("."):
        return "hidden file", "hidden files", "not data"
    return "non-image file", "non-image files", "not an image"


def _skipped(root: Path, listed, unreadable: list[str]) -> list[tuple[str, list[str]]]:
    """Every file the listing of folder ``root`` passed over (``listed``, its record), and
    those that could not be decoded, grouped by what they are, with why they were left out."""
    kinds: dict[tuple[str, str, str], list[str]] = {}

    def add(kind: tuple[str, str, str], names: list[str]) -> None:
        if names:
            kinds.setdefault(kind, []).extend(names)

    add(("unreadable image", "unreadable images", "cannot be decoded"), unreadable)
    for name in listed.files:
        add(_kind_of(root, name), [name])
    add(("symbolic link", "symbolic links", "not followed"), listed.links)
    add(("symbolic link", "symbolic links", "loops or leads nowhere"), listed.dead_links)
    add(("folder", "folders", "cannot be listed"), listed.folders)
    return [
        (f"{one if len(names) == 1 else many} ({why})", names)
        for (one, many, why), names in kinds.items()
    ]


def read_images(source: str | os.PathLike, shape: tuple[int, int, int], data_home=None) -> Images:
    """The images ``(N, C, H, W)`` of ``source`` (a folder, an array file or a data set's name)
    at the run's ``shape``, and a name for each (the file's path in a folder, else its index).

    In a folder, what is not a regular image file is left out (as every folder reader does:
    other files, symbolic links, FIFOs), and so are image files that cannot be decoded; each
    is named, with why, in :attr:`Images.skipped`."""
    c, h, w = shape
    if Path(source).is_dir():
        folder = ImageFolderDataset(source, image_size=(h, w), channels=c)
        images, names, unreadable = [], [], []
        for i, (name, _, _) in enumerate(folder.listing()):
            try:
                images.append(folder[i].numpy())
            except ValueError:  # unreadable: named, not scored
                unreadable.append(name)
                continue
            names.append(name)
        if not images:
            raise ValueError(f"data='{source}' holds no readable image files")
        skipped = _skipped(Path(source), folder.skipped, unreadable)
        return Images(np.stack(images), names, True, skipped)
    data = load_dataset(source, data_home=data_home, image_size=(h, w), channels=c)
    if data.image_shape != tuple(shape):
        raise ValueError(
            f"data='{source}' has images of shape {data.image_shape}; the run takes {shape}"
        )
    return Images(data.images, [str(i) for i in range(len(data))], False, [])


@dataclasses.dataclass
class Scored:
    """What :meth:`Scorer.evaluate` gives for a batch of images."""

    scores: np.ndarray  # (N,) higher = more normal
    p_values: np.ndarray  # (N,)
    outlier: np.ndarray  # (N,) bool: score below the threshold
    maps: np.ndarray | None = None  # (N, H, W) squared error per pixel (mean over channels)
    pixel_p: np.ndarray | None = None  # (N, H, W) each pixel's conformal p-value


@dataclasses.dataclass
class Scorer:
    """A run's detector with its threshold: what ``aelab score`` scores with."""

    detector: Detector
    fpr: float
    source: str  # where the calibration came from, for the summary line
    skipped: str = ""  # what a calibration folder's listing passed over, for the summary line
    map_correction: str = "none"  # of the per-pixel level, for the number of pixels

    @property
    def threshold(self) -> float:
        return self.detector.threshold(self.fpr)

    @property
    def pixel_level(self) -> float:
        """The level each pixel's p-value is compared with (needs ``pixels`` at opening)."""
        return self.detector.pixel_level(self.fpr, self.map_correction)

    def evaluate(self, images: np.ndarray, maps: bool = False) -> Scored:
        """Scores, p-values and decisions of ``images`` ``(N, C, H, W)``; with ``maps``, each
        image's per-pixel errors and their calibrated p-values too (one reconstruction)."""
        x = torch.from_numpy(images)
        x_hat = self.detector.reconstruct(x) if maps else None
        scores = self.detector.scores(x, x_hat)
        scored = Scored(scores, self.detector.p_values(scores), scores < self.threshold)
        if maps:
            scored.maps = self.detector.maps(x, x_hat)
            scored.pixel_p = self.detector.pixel_p_values(scored.maps)
        return scored

    def score(self, images: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        """One row per image: its score, conformal p-value and whether it is an outlier."""
        return rows(self.evaluate(images), names)


def rows(scored: Scored, names: list[str]) -> list[dict[str, Any]]:
    """One row per image: its name, score, conformal p-value and whether it is an outlier."""
    return [
        {"index": i, "name": n, "score": float(s), "p_value": float(q), "outlier": bool(o)}
        for i, (n, s, q, o) in enumerate(zip(names, scored.scores, scored.p_values, scored.outlier))
    ]


def _enough(detector: Detector, fpr: float, what: str) -> None:
    """Refuse a calibration too small for ``fpr``: its threshold would be -inf, and no image
    ever flagged."""
    problem = too_few_to_calibrate(
        len(detector.calibration), fpr, what=what, fix="pass --calibrate DATA with", rate="--fpr"
    )
    if problem is not None:
        raise ValueError(problem)


def open_scorer(
    path: str | os.PathLike, calibrate=None, data_home=None, fpr: float | None = None,
    legacy: bool = False, *, pixels: bool = False, map_correction: str = "none",
) -> Scorer:  # fmt: skip
    """The run in ``path`` as a scorer: its detector (the score its estimator was fitted with,
    if one saved it), calibrated on ``calibrate`` when given, else on the calibration share an
    estimator held out at fit, else (a run of ``aelab train``) on the run's unseen normal
    images; the threshold at ``fpr`` (default: the estimator's, else 0.05). A calibration too
    small for the rate is refused, naming how many images it needs. With ``pixels``, the
    calibration images also calibrate each pixel (an estimator's saved calibration holds
    scores, not images: ``calibrate`` is then needed), at the per-pixel level
    ``map_correction`` gives (:func:`aelab.analysis.anomaly.pixel_level`)."""
    if map_correction not in anomaly.PIXEL_CORRECTIONS:
        anomaly.pixel_level(anomaly.DEFAULT_FPR, 1, map_correction)  # its one-line refusal
    opened = open_runs(path, legacy=legacy)
    if opened.workshop is not None:
        raise ValueError(
            f"run='{path}' is a workshop; aelab score and aelab export --scorer take one of its "
            f"models ({path}/NAME)"
        )
    run = next(iter(opened.runs.values()))
    return run_scorer(run, path, calibrate, data_home, fpr, legacy, pixels=pixels,
                      map_correction=map_correction)  # fmt: skip


def run_scorer(
    run, path: str | os.PathLike, calibrate=None, data_home=None, fpr: float | None = None,
    legacy: bool = False, *, pixels: bool = False, map_correction: str = "none", split=None,
) -> Scorer:  # fmt: skip
    """:func:`open_scorer` for a ``run`` already opened from ``path`` (the explorer's); ``split``:
    its data, when at hand (else read again from ``path`` if the calibration needs it)."""
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
        cal = read_images(calibrate, shape, data_home)
        detector.calibrate(torch.from_numpy(cal.x), pixels=pixels)
        _enough(detector, fpr, f"images of calibrate='{calibrate}'")
        source = f"{len(cal.x)} images of {calibrate}"
        return _checked(Scorer(detector, fpr, source, cal.skipped_line(), map_correction), pixels)
    if section.get("calibration_scores") is not None:
        if pixels:
            raise ValueError(
                f"run='{path}' kept the scores of its calibration samples, not the images: "
                "calibrated maps and galleries need normal images to calibrate each pixel on; "
                "pass --calibrate DATA (normal images the model did not train on)"
            )
        detector.calibrate_scores(np.asarray(section["calibration_scores"], dtype=np.float64))
        n = len(detector.calibration)
        _enough(detector, fpr, f"calibration samples that run='{path}' held out at fit")
        return Scorer(detector, fpr, f"the {n} calibration samples held out at fit")
    if split is None:
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
    detector.calibrate(torch.from_numpy(held.images), pixels=pixels)
    _enough(detector, fpr, f"{what} images of run='{path}'")
    source = f"the run's {len(held)} {what} images"
    return _checked(Scorer(detector, fpr, source, "", map_correction), pixels)


def _checked(scorer: Scorer, pixels: bool) -> Scorer:
    """``scorer``, once its per-pixel level is shown to be reachable (when asked for)."""
    if pixels:
        scorer.pixel_level  # noqa: B018 - raises when the calibration cannot reach it
    return scorer


def rows_csv(rows: list[dict[str, Any]]) -> bytes:
    """The rows as a UTF-8 CSV: each name as it can be written (:func:`shown_name`) and safe
    to open in a spreadsheet (:func:`csv_cell`; the other columns are numbers aelab wrote)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["index", "name", "score", "p_value", "outlier"])
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "name": csv_cell(shown_name(r["name"])),
                         "score": f"{r['score']:.6g}", "p_value": f"{r['p_value']:.6g}",
                         "outlier": int(r["outlier"])})  # fmt: skip
    return buf.getvalue().encode("utf-8")


def map_names(images: Images) -> list[str]:
    """A file name for each image's error map, unique in its folder: for a folder's files, the
    file's path with each separator as ``__`` and any character but a letter, a digit, ``.``,
    ``-`` and ``_`` as ``_`` (a byte that is not UTF-8 too), no leading ``.`` or ``-``, at most
    200 bytes, then ``.png`` (replacing the file's own ``.png``: ``cats/a.png`` ->
    ``cats__a.png``, ``cats/b.jpg`` -> ``cats__b.jpg.png``); a name taken already, also in
    another case, gets ``-2``, ``-3``... For an array or a data set: the index, zero-padded."""
    if not images.files:
        width = len(str(len(images.names)))
        return [f"{i:0{width}d}.png" for i in range(len(images.names))]
    out, taken = [], set()
    for i, name in enumerate(images.names):
        parts = re.split(r"[/\\]", name)  # the separators of POSIX and Windows alike
        stem = "__".join(re.sub(r"[^\w.-]", "_", part) for part in parts)
        if stem.lower().endswith(".png"):
            stem = stem[:-4]
        stem = re.sub(r"^[.-]", "_", stem).encode()[:200].decode("utf-8", "ignore") or str(i)
        unique, k = stem, 1
        while unique.casefold() in taken:  # a case-insensitive file system: A.png is a.png
            k += 1
            unique = f"{stem}-{k}"
        taken.add(unique.casefold())
        out.append(unique + ".png")
    return out


def png(rgb: np.ndarray) -> bytes:
    """An RGB (or grey) uint8 array as the bytes of a PNG file."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def calibrated_map_pngs(scorer: Scorer, scored: Scored) -> list[bytes]:
    """One PNG per image, at the image's size: each pixel's ``-log10 p`` on the one fixed
    scale of the per-pixel level (:func:`aelab.plots.maps.significance_rgb`): white at the
    threshold, blue below, red above. A map depends on its own image alone, never on the
    others scored with it."""
    rgb = significance_rgb(anomaly.significance(scored.pixel_p), scorer.pixel_level)
    return [png(m) for m in rgb]


def map_scale_line(scorer: Scorer) -> str:
    """The maps' scale in words, for the summary line."""
    level = scorer.pixel_level
    low, _, top = anomaly.significance_scale(level)
    what = "" if scorer.map_correction == "none" else f", {scorer.map_correction} for the pixels"
    return (
        f"maps: -log10 p per pixel on {low:g}-{top:.3g}, blue below, white at p={level:.3g} "
        f"(the per-pixel threshold{what}), red above"
    )
