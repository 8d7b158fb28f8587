"""Score a folder of images with an aelab export alone: onnxruntime, NumPy and Pillow, no aelab.

    aelab export runs/faces --scorer --out faces-onnx      # writes scorer.onnx and export.json
    python examples/score_onnx.py faces-onnx photos/ [--out scores.csv]

Reads every image file under the folder (hidden files and symbolic links are left out) exactly as
aelab reads it, by the rules ``export.json`` records (Pillow's decoding, alpha over white, the
grey weights, scikit-image's anti-aliased resize, rewritten here with NumPy), runs
``scorer.onnx`` and writes ``index,name,score,p_value,outlier`` as ``aelab score`` does, from the
threshold and calibration scores in ``export.json``. Before it reads an image it checks the export:
``scorer.onnx`` against the SHA-256 ``export.json`` records, every field it uses (its type and
range), and that the threshold follows from the calibration scores and the rate; a changed or
broken export is one line on stderr and exit code 2. ``export.json`` is not signed: these checks
catch damage and careless edits, not someone who rewrites it consistently.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image

MAX_IMAGE_PIXELS = 40_000_000  # as aelab: larger images are refused before decoding
BATCH = 256
KNOWN = {  # the rules this script implements, by the kind export.json names
    "scaling": "by-bit-depth",
    "reduce_large": "aelab-box-then-gaussian",
    "alpha": "over-background",
    "grey": "weighted",
    "colour_from_grey": "copy",
    "resize": "skimage-antialias-linear",
}


class Refused(Exception):
    """A problem with the export or the arguments: one line, exit code 2."""


# -- the export --------------------------------------------------------------------------------


def _number(section: dict, key: str, where: str, low=-math.inf, high=math.inf, kind=float):
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise Refused(f"export.json: {where}{key}={value!r} is not a number")
    if not (math.isfinite(value) and low <= value <= high):
        raise Refused(f"export.json: {where}{key}={value!r} is out of range [{low}, {high}]")
    return kind(value)


def _numbers(section: dict, key: str, where: str, n: int, low: float, high: float) -> list:
    values = section.get(key)
    if not isinstance(values, list) or len(values) != n:
        raise Refused(f"export.json: {where}{key} is not a list of {n} numbers")
    return [_number({key: v}, key, where, low, high) for v in values]


def _threshold_at(calibration: list[float], fpr: float) -> float:
    """aelab's conformal threshold (aelab.analysis.anomaly.threshold_at)."""
    m = math.floor(fpr * (len(calibration) + 1)) - 1
    if m < 0:
        return -math.inf
    return math.inf if m >= len(calibration) else calibration[m]


def load_export(folder: Path) -> tuple[dict, onnxruntime.InferenceSession]:
    """export.json's scorer section, checked, and the scorer graph it names."""
    path = folder / "export.json"
    try:
        record = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise Refused(f"{folder} holds no export.json: is it an aelab export?") from None
    except (OSError, ValueError) as e:
        raise Refused(f"{path} is not readable JSON ({' '.join(str(e).split())})") from None
    if not isinstance(record, dict) or record.get("aelab_export") != 1:
        raise Refused(f"{path} is not an aelab export.json of format 1")
    s = record.get("scorer")
    if not isinstance(s, dict):
        raise Refused(f"{path} has no scorer section: export with aelab export RUN --scorer")
    if s.get("scorer_format") != 1 or s.get("score", {}).get("name") != "reconstruction":
        raise Refused("export.json: scorer_format 1 with the reconstruction score expected")
    h, w = (int(v) for v in _numbers(s, "image_size", "scorer.", 2, 1, 65536))
    if any(v != int(v) for v in s["image_size"]):
        raise Refused(f"export.json: scorer.image_size={s['image_size']!r} is not two integers")
    channels = s.get("channels")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise Refused(f"export.json: scorer.channels={channels!r} is not 1 or 3")
    fpr = _number(s, "fpr", "scorer.", 0.0, 1.0)
    calibration = s.get("calibration_scores")
    if not isinstance(calibration, list) or not calibration:
        raise Refused("export.json: scorer.calibration_scores is not a non-empty list")
    calibration = [_number({"calibration_scores": c}, "calibration_scores", "scorer.")
                   for c in calibration]  # fmt: skip
    if calibration != sorted(calibration) or s.get("n_calibration") != len(calibration):
        raise Refused("export.json: scorer.calibration_scores are not sorted, or not "
                      "n_calibration of them")  # fmt: skip
    threshold = _number(s, "threshold", "scorer.")
    if _threshold_at(calibration, fpr) != threshold:
        raise Refused(
            f"export.json: scorer.threshold={threshold!r} does not follow from its "
            f"calibration_scores and fpr={fpr!r}: the file was changed"
        )
    read = s.get("read")
    if not isinstance(read, dict):
        raise Refused("export.json: scorer.read is missing")
    for rule, kind in KNOWN.items():
        if not isinstance(read.get(rule), dict) or read[rule].get("kind") != kind:
            raise Refused(f"export.json: scorer.read.{rule} is not the rule {kind!r} this "
                          "script implements")  # fmt: skip
    scaling = read["scaling"]
    if scaling.get("uint8") != 255 or scaling.get("uint16") != 65535:
        raise Refused("export.json: scorer.read.scaling is not 8-bit / 255, 16-bit / 65535")
    settings = {
        "size": (h, w), "channels": channels, "fpr": fpr, "threshold": threshold,
        "calibration": np.asarray(calibration, dtype=np.float64),
        "truncate": _number(read["resize"], "truncate", "scorer.read.resize.", 0.5, 10.0),
        "at_least": _number(read["reduce_large"], "at_least", "scorer.read.reduce_large.", 1,
                            64, int),
        "background": _numbers(read["alpha"], "background", "scorer.read.alpha.", 3, 0.0, 1.0),
        "weights": _numbers(read["grey"], "weights", "scorer.read.grey.", 3, -10.0, 10.0),
    }  # fmt: skip
    name, files = s.get("file"), record.get("files")
    if not isinstance(name, str) or name != os.path.basename(name) or name in ("", ".", ".."):
        raise Refused(f"export.json: scorer.file={name!r} is not a file name in the export")
    if not isinstance(files, dict) or not isinstance(files.get(name), str):
        raise Refused(f"export.json: files records no SHA-256 of {name}")
    graph = folder / name
    try:
        data = graph.read_bytes()
    except OSError as e:
        raise Refused(f"{graph}: {e.strerror or e}") from None
    if hashlib.sha256(data).hexdigest() != files[name]:
        raise Refused(f"{graph} is not the file export.json records (its SHA-256 differs)")
    try:
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own errors: a graph it cannot load
        raise Refused(f"{graph}: onnxruntime cannot load it ({' '.join(str(e).split())})") from None
    (x,) = session.get_inputs()
    if x.name != "x" or list(x.shape[1:]) != [channels, h, w]:
        raise Refused(f"{graph} takes {x.name} {x.shape}, not (B, {channels}, {h}, {w})")
    return settings, session


# -- reading an image as aelab does ------------------------------------------------------------


def _factor(n: int, target: int, at_least: int) -> int:
    largest = n // (at_least * target)
    if largest < 2:
        return 1
    candidates = range(max(2, (largest + 1) // 2), largest + 1)
    return min(candidates, key=lambda k: (k * -(-n // k) - n, -k))


def _remaining_blur(original: int, reduced: int, target: int) -> float:
    k = original / reduced
    whole = max(0.0, (original / target - 1) / 2) ** 2
    after = (k * max(0.0, (reduced / target - 1) / 2)) ** 2
    return max(0.0, whole - after - (k * k - 1) / 12) ** 0.5 / k


def _as_rgb_family(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA", "I", "F") or mode.startswith("I;16"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA"):
        alpha = mode == "PA" or "transparency" in im.info or im.palette.mode == "RGBA"
        return im.convert("RGBA" if alpha else "L" if im.palette.mode == "L" else "RGB")
    return im.convert({"La": "LA", "RGBa": "RGBA"}.get(mode, "RGB"))


def _to_float(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype.kind == "i":  # Pillow's mode I
        if pixels.min() < 0 or pixels.max() > 65535:
            raise ValueError("32-bit integer pixels outside [0, 65535]")
        return np.multiply(pixels, 1.0 / 65535, dtype=np.float64)
    pixels = pixels.astype(pixels.dtype.newbyteorder("="), copy=False)
    if pixels.dtype == np.uint8:
        return np.multiply(pixels, 1.0 / 255, dtype=np.float64)
    if pixels.dtype == np.uint16:
        return np.multiply(pixels, 1.0 / 65535, dtype=np.float64)
    if pixels.dtype.kind == "f":
        return pixels
    raise ValueError(f"pixels of dtype {pixels.dtype} are not read")


def _mirror_index(i: np.ndarray, n: int) -> np.ndarray:
    """Indices past either end reflected without repeating the edge (d c b | a b c d | c b a)."""
    if n == 1:
        return np.zeros_like(i)
    period = 2 * n - 2
    i = np.abs(i) % period
    return np.where(i >= n, period - i, i)


def gaussian_filter(img: np.ndarray, sigmas, truncate: float) -> np.ndarray:
    """scipy.ndimage.gaussian_filter(img, sigmas, mode="mirror", truncate=truncate)."""
    out = img
    for axis, sigma in enumerate(sigmas):
        if sigma <= 1e-15:
            continue
        radius = int(truncate * sigma + 0.5)
        x = np.arange(-radius, radius + 1)
        weights = np.exp(-0.5 / (sigma * sigma) * x**2)
        weights = weights / weights.sum()
        n = out.shape[axis]
        moved = np.moveaxis(out, axis, 0)
        index = _mirror_index(np.arange(-radius, n + radius), n)
        padded = moved[index]
        acc = np.zeros_like(moved)
        for k, wk in enumerate(weights):
            acc += wk * padded[k : k + n]
        out = np.moveaxis(acc, 0, axis)
    return out


def _linear(img: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Linear interpolation along ``axis`` to ``size`` at half-pixel centres, mirror edges
    (scipy.ndimage.zoom(order=1, mode="mirror", grid_mode=True) on one axis)."""
    n = img.shape[axis]
    c = (np.arange(size) + 0.5) * (n / size) - 0.5
    if n == 1:
        c = np.zeros(size)
    c = np.where(c < 0, -c, c)
    c = np.where(c > n - 1, 2 * (n - 1) - c, c)
    i0 = np.floor(c).astype(np.int64)
    t = c - i0
    i1 = np.minimum(i0 + 1, n - 1)
    moved = np.moveaxis(img, axis, 0)
    shape = (size,) + (1,) * (moved.ndim - 1)
    out = moved[i0] * (1 - t).reshape(shape) + moved[i1] * t.reshape(shape)
    return np.moveaxis(out, 0, axis)


def resize(img: np.ndarray, size: tuple[int, int], truncate: float) -> np.ndarray:
    """skimage.transform.resize(img, size, anti_aliasing=True) for (H, W) or (H, W, C)."""
    factors = [img.shape[0] / size[0], img.shape[1] / size[1]]
    sigmas = [max(0.0, (f - 1) / 2) for f in factors] + [0.0] * (img.ndim - 2)
    out = gaussian_filter(img, sigmas, truncate)
    out = _linear(_linear(out, 0, size[0]), 1, size[1])
    return np.clip(out, img.min(), img.max())


def read_image(path: Path, settings: dict) -> np.ndarray:
    """One image file as aelab reads it: ``(C, H, W)`` float32 in [0, 1]."""
    size, at_least = settings["size"], settings["at_least"]
    with Image.open(path) as im:
        w, h = im.size
        if w * h > MAX_IMAGE_PIXELS:
            raise ValueError(f"{h}x{w} is more than {MAX_IMAGE_PIXELS:,} pixels")
        if _factor(w, size[1], at_least) > 1 or _factor(h, size[0], at_least) > 1:
            im.draft(im.mode, (at_least * size[1], at_least * size[0]))
        kx, ky = _factor(im.size[0], size[1], at_least), _factor(im.size[1], size[0], at_least)
        im.load()
        img = _as_rgb_family(im)
        if (kx, ky) != (1, 1):
            img = img.convert("I") if img.mode.startswith("I;16") else img
            img = img.reduce((kx, ky))
        pixels = np.asarray(img)
    img = _to_float(pixels)
    if img.shape[:2] != (h, w):
        sigma = [_remaining_blur(n, r, t) for n, r, t in zip((h, w), img.shape, size)]
        img = gaussian_filter(img, sigma + [0.0] * (img.ndim - 2), settings["truncate"])
    if img.ndim == 3 and img.shape[-1] == 2:  # grey + alpha: as RGBA
        img = np.stack([img[..., 0]] * 3 + [img[..., 1]], axis=-1)
    if img.ndim == 3 and img.shape[-1] == 4:
        alpha, colour = img[..., 3:4], img[..., :3]
        background = np.asarray(settings["background"], dtype=img.dtype)
        img = np.clip((1 - alpha) * background + alpha * colour, 0, 1)
    if settings["channels"] == 1 and img.ndim == 3:
        img = img @ np.asarray(settings["weights"], dtype=img.dtype)
    elif settings["channels"] == 3 and img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.shape[:2] != tuple(size):
        img = resize(img, size, settings["truncate"])
    img = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


# -- the folder --------------------------------------------------------------------------------


def image_files(folder: Path) -> list[str]:
    """Regular files under ``folder``, as paths relative to it, sorted; hidden names and
    symbolic links left out."""
    found = []
    for root, dirs, files in os.walk(folder):  # os.walk never follows links to folders
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if not name.startswith(".") and path.is_file() and not path.is_symlink():
                found.append(path.relative_to(folder).as_posix())
    return sorted(found)


def score_folder(folder: Path, settings: dict, session) -> tuple[list[dict], list[str]]:
    """A row per readable image, and the files left out (with why)."""
    names, images, skipped = [], [], []
    for name in image_files(folder):
        try:
            images.append(read_image(folder / name, settings))
        except Exception as e:  # whatever a file that is not an image makes Pillow raise
            skipped.append(f"{name} ({' '.join(str(e).split())[:80]})")
            continue
        names.append(name)
    if not images:
        raise Refused(f"{folder} holds no readable image files")
    x = np.stack(images)
    scores = np.concatenate([session.run(["score"], {"x": x[i : i + BATCH]})[0]
                             for i in range(0, len(x), BATCH)])  # fmt: skip
    calibration = settings["calibration"]
    at_most = np.searchsorted(calibration, scores, side="right")
    p = (1.0 + at_most) / (len(calibration) + 1.0)
    rows = [{"index": i, "name": n, "score": repr(float(s)), "p_value": repr(float(q)),
             "outlier": int(s < settings["threshold"])}
            for i, (n, s, q) in enumerate(zip(names, scores, p))]  # fmt: skip
    return rows, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="score_onnx.py", description=__doc__.split("\n")[0])
    parser.add_argument("export", help="a folder written by aelab export --scorer")
    parser.add_argument("folder", help="a folder of images")
    parser.add_argument("--out", help="write the CSV here (default: stdout)")
    args = parser.parse_args(argv)
    try:
        settings, session = load_export(Path(args.export))
        if not Path(args.folder).is_dir():
            raise Refused(f"folder={args.folder!r} is not a folder")
        rows, skipped = score_folder(Path(args.folder), settings, session)
    except Refused as e:
        print(f"score_onnx.py: error: {e}", file=sys.stderr)
        return 2
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["index", "name", "score", "p_value", "outlier"])
    writer.writeheader()
    writer.writerows(rows)
    if args.out:
        Path(args.out).write_text(buffer.getvalue(), encoding="utf-8")
    else:
        sys.stdout.write(buffer.getvalue())
    flagged = sum(r["outlier"] for r in rows)
    note = f"; skipped {len(skipped)}: {', '.join(skipped[:3])}" if skipped else ""
    print(f"{len(rows)} images, {flagged} outliers at fpr={settings['fpr']:g} (threshold "
          f"{settings['threshold']:.6g}){note}", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
