"""One trained model's latent space, as the explorer's page and its Jupyter widget see it.

A :class:`LatentSpace` holds the codes of (a seeded sample of) the run's training images and of
its held-out images, and answers what a slider, a click on the scatter or an uploaded image
asks: the sliders' ranges, a 2-D map of the codes and the way back from it, random codes, codes
of images, and images of codes. It knows nothing of HTTP or widgets; everything it takes from
outside (a code, an image file, an index) is checked here, with a one-line ``ValueError``.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from aelab.analysis import generate, metrics
from aelab.analysis.units import unit_pages
from aelab.data.images import ImageSet, _fit_image
from aelab.data.prepare import Split
from aelab.data.reading import _read_image
from aelab.runs.run import Run

MAX_TRAIN_POINTS = 2000  # training images whose codes set the ranges, the PCA and the scatter
MAX_HELDOUT_POINTS = 500
MAX_UNIT_SLIDERS = 32  # more code units than this: sliders on the codes' principal components
MAX_COMPONENTS = 32
DEFAULT_COMPONENTS = 10
PRIOR_SIGMAS = 3.0  # a variational code's sliders span its prior N(0, I) to +-3 sigma
MAX_ABS_CODE = 1e4  # a code value beyond this is refused: no slider or click reaches it
MAX_UPLOAD_BYTES = 10 * 2**20
MAX_UPLOAD_PIXELS = 40_000_000
UPLOAD_FORMATS = ("PNG", "JPEG", "PPM")  # PPM: Pillow's reader of PGM, PPM and PBM files
THUMBNAIL = 32  # the longest side of a scatter thumbnail, in pixels
SPRITE_COLUMNS = 50
EMBEDDINGS = ("pca", "tsne")
APPROACHES = ("units", "pca")  # the notebook's two ways to generate: unit by unit, PCA of codes


class UnsupportedImage(ValueError):
    """An upload that is no PNG, JPEG or PGM/PPM file."""


class ImageTooLarge(ValueError):
    """An upload above :data:`MAX_UPLOAD_BYTES` or :data:`MAX_UPLOAD_PIXELS`."""


@dataclass
class Slider:
    label: str
    low: float
    high: float
    value: float
    dead: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "low": self.low, "high": self.high, "value": self.value,
                "dead": self.dead}  # fmt: skip


def _sample(part, limit: int, seed: int) -> ImageSet:
    """At most ``limit`` images of ``part`` (seeded, in their order), in memory."""
    if len(part) > limit:
        part = part.subset(np.sort(np.random.default_rng(seed).choice(len(part), limit, False)))
    return part if isinstance(part, ImageSet) else part.load()


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images ``(N, C, H, W)`` in [0, 1] as ``(N, H, W, C)`` bytes."""
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


def png(pixels: np.ndarray) -> bytes:
    """One ``(H, W, C)`` uint8 image (C = 1 or 3) as PNG bytes (fast compression)."""
    from PIL import Image

    img = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class LatentSpace:
    """The latent space of ``run``'s model over ``split`` (see the module's docstring)."""

    def __init__(
        self, run: Run, split: Split, *, name: str | None = None, seed: int = 0,
        image_groups: Any = None,
    ):  # fmt: skip
        if run.model.discrete_codes:
            raise ValueError(
                f"model={run.name!r} has discrete codes (a codebook's indices); the explorer "
                "moves continuous codes"
            )
        self.run = run
        self.split = split  # all of it: the calibration of the maps (.unusual) reads it
        self.image_groups = image_groups  # the user's groups (.directions); None: the labels
        self.name = name or run.name
        self.shape = tuple(run.model.input_shape)
        for part, images in (("train", split.train), ("heldout", split.heldout)):
            if len(images) and tuple(images.image_shape) != self.shape:
                raise ValueError(
                    f"split has {part} images of shape {tuple(images.image_shape)}; model "
                    f"{self.name!r} takes images of shape {self.shape}"
                )
        self.dim = int(run.model.latent_dim)
        self.variational = bool(run.model.variational)
        self.train = _sample(split.train, MAX_TRAIN_POINTS, seed)
        self.heldout = _sample(split.heldout, MAX_HELDOUT_POINTS, seed + 1)
        self.codes_train = run.encode(self.train.images).astype(np.float64)
        self.codes_heldout = (
            run.encode(self.heldout.images).astype(np.float64)
            if len(self.heldout)
            else np.zeros((0, self.dim))
        )
        self.mean = self.codes_train.mean(axis=0)
        self.dead = metrics.dead_units(self.codes_train)
        self.pca = self._fit_pca()
        self._embeddings: dict[str, np.ndarray] = {}
        self._units: dict[str, Any] | None = None

    # -- what the sliders are -------------------------------------------------------------
    @property
    def mode(self) -> str:
        """``"units"``: a slider per code unit; ``"pca"``: per principal component of the codes."""
        return "units" if self.dim <= MAX_UNIT_SLIDERS else "pca"

    def _fit_pca(self):
        from sklearn.decomposition import PCA

        n = min(MAX_COMPONENTS, self.dim, len(self.codes_train))
        if n < 1 or len(self.codes_train) < 2:
            return None
        return PCA(n_components=n, svd_solver="full").fit(self.codes_train)

    def sliders(self) -> list[Slider]:
        if self.mode == "pca":
            scores = self.pca.transform(self.codes_train)
            return [Slider(f"PC {i + 1}", float(lo), float(hi), 0.0)
                    for i, (lo, hi) in enumerate(zip(scores.min(0), scores.max(0)))]  # fmt: skip
        if self.variational:
            return [
                Slider(f"z{i + 1}", -PRIOR_SIGMAS, PRIOR_SIGMAS, 0.0, bool(d))
                for i, d in enumerate(self.dead)
            ]
        lo, hi = self.codes_train.min(0), self.codes_train.max(0)
        out = []
        for i in range(self.dim):
            low, high = float(lo[i]), float(hi[i])
            if high - low <= 1e-6:  # a dead unit: a unit-wide range above its constant value
                high = low + 1.0
            out.append(Slider(f"unit {i + 1}", low, high, float(self.mean[i]), bool(self.dead[i])))
        return out

    def describe(self) -> dict[str, Any]:
        """Everything the page needs to draw this model's controls (JSON-ready)."""
        c, h, w = self.shape
        out: dict[str, Any] = {
            "name": self.name,
            "family": self.run.model.family,
            "image_shape": [c, h, w],
            "latent_dim": self.dim,
            "variational": self.variational,
            "mode": self.mode,
            "sliders": [s.as_dict() for s in self.sliders()],
            "dead_units": int(self.dead.sum()),
            "mean_code": self.mean.tolist(),
            "n_train": len(self.train),
            "n_heldout": len(self.heldout),
            "embeddings": ["code"] if self.dim <= 2 else list(EMBEDDINGS),
            "default_components": min(DEFAULT_COMPONENTS, len(self.sliders())),
            "max_abs_code": MAX_ABS_CODE,
        }
        if self.mode == "pca":
            out["pca"] = {"mean": self.pca.mean_.tolist(),
                          "components": self.pca.components_.tolist()}  # fmt: skip
        return out

    # -- a page per unit (aelab.analysis.units) ---------------------------------------------
    def units(self) -> dict[str, Any]:
        """Every unit's page, over the held-out images (the training sample without them),
        computed once."""
        if self._units is None:
            held = len(self.heldout) > 0
            x = self.heldout.images if held else self.train.images
            codes = self.codes_heldout if held else self.codes_train
            self._units = unit_pages(self.run.decode, self.codes_train, codes, x)
        return self._units

    def unit_list(self) -> list[dict[str, Any]]:
        """The units, most useful first: each one's index, usefulness, density and whether it
        is dead (JSON-ready)."""
        u = self.units()
        return [
            {"unit": int(i), "usefulness": float(u["usefulness"][i]),
             "density": float(u["density"][i]), "dead": bool(u["dead"][i])}
            for i in u["order"]
        ]  # fmt: skip

    def unit_png(self, unit: int) -> bytes:
        """Unit ``unit``'s page as a PNG."""
        from aelab import plots
        from aelab.plots import inside

        if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < self.dim:
            raise ValueError(f"unit={unit!r} is not valid; allowed: 0 to {self.dim - 1}")
        u = self.units()
        images = self.heldout.images if len(self.heldout) else self.train.images
        figure = inside.unit_page(
            u["directions"][unit], images[u["top"][unit]], images[u["bottom"][unit]],
            u["histograms"][unit], u["edges"][unit],
            title=f"{self.name}, unit {unit + 1}: usefulness {u['usefulness'][unit]:.3g}, "
            f"density {u['density'][unit]:.2f}" + (" (dead)" if u["dead"][unit] else ""),
        )  # fmt: skip
        return plots.png_bytes(figure)

    # -- codes in, images out -------------------------------------------------------------
    def check_codes(self, codes: Any) -> np.ndarray:
        """``codes`` (one code or a list of them) as a ``(B, latent_dim)`` float32 array."""
        try:
            arr = np.asarray(codes, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(
                f"code is not a list of numbers; expected {self.dim} numbers"
            ) from None
        arr = arr[None] if arr.ndim == 1 else arr
        if arr.ndim != 2 or arr.shape[1] != self.dim or arr.shape[0] < 1:
            raise ValueError(
                f"code has shape {list(np.shape(codes))}; expected {self.dim} numbers "
                f"(model {self.name!r} has {self.dim} code units)"
            )
        if not np.isfinite(arr).all():
            raise ValueError("code holds NaN or infinity; expected finite numbers")
        if np.abs(arr).max() > MAX_ABS_CODE:
            raise ValueError(
                f"code holds {float(np.abs(arr).max()):.4g}; allowed: values within "
                f"+-{MAX_ABS_CODE:g}"
            )
        return arr.astype(np.float32)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Images ``(B, H, W, C)`` uint8 of checked codes ``(B, latent_dim)`` (:meth:`check_codes`;
        :meth:`aelab.Run.map` refuses any other shape in one line)."""
        return to_uint8(self.run.decode(codes))

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes ``(B, latent_dim)`` float64 of images ``x`` ``(B, C, H, W)`` of the run's shape
        (as :meth:`read_image` gives them, with a batch axis); :meth:`aelab.Run.map` refuses any
        other shape in one line."""
        return self.run.encode(x).astype(np.float64)

    def read_image(self, data: bytes) -> np.ndarray:
        """An uploaded PNG, JPEG or PGM/PPM file as one image ``(C, H, W)`` of the run's shape,
        resized and converted as the run's folders are read."""
        from PIL import Image, UnidentifiedImageError

        if len(data) > MAX_UPLOAD_BYTES:
            raise ImageTooLarge(
                f"image of {len(data):,} bytes; allowed: at most {MAX_UPLOAD_BYTES:,} bytes"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as im:
                    pixels = im.size[0] * im.size[1]
        except Image.DecompressionBombError:  # Pillow's own limit, far above ours
            pixels = MAX_UPLOAD_PIXELS + 1
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise UnsupportedImage("image is not a PNG, JPEG or PGM/PPM file") from None
        if pixels > MAX_UPLOAD_PIXELS:
            raise ImageTooLarge(
                f"image of {pixels:,} pixels; allowed: at most {MAX_UPLOAD_PIXELS:,} pixels"
            )
        c, h, w = self.shape
        try:
            img = _read_image(io.BytesIO(data), (h, w), MAX_UPLOAD_PIXELS)
        except Exception as e:  # a truncated or hostile file: Pillow's reason, one line
            raise ValueError(f"image could not be read: {str(e).splitlines()[0]}") from None
        return _fit_image(img, (h, w), c)

    # -- the 2-D map ----------------------------------------------------------------------
    def embedding(self, method: str) -> np.ndarray:
        """2-D points of the training then held-out codes: the code itself when it has two
        units, else PCA of the codes (invertible) or t-SNE (``method="tsne"``, not)."""
        method = "code" if self.dim <= 2 else method
        if method not in ("code", *EMBEDDINGS):
            raise ValueError(f"method={method!r} is not valid; allowed: {', '.join(EMBEDDINGS)}")
        if method not in self._embeddings:
            codes = np.concatenate([self.codes_train, self.codes_heldout])
            if method == "code":  # one unit: on a line
                points = codes if self.dim == 2 else np.pad(codes, ((0, 0), (0, 1)))
            elif method == "pca":
                points = (codes - self.pca.mean_) @ self.pca.components_[:2].T
            else:
                from sklearn.manifold import TSNE

                perplexity = max(1.0, min(30.0, (len(codes) - 1) / 3))
                points = TSNE(perplexity=perplexity, init="pca", random_state=0).fit_transform(
                    codes
                )
            self._embeddings[method] = np.asarray(points, dtype=np.float64)
        return self._embeddings[method]

    def points(self, method: str) -> dict[str, Any]:
        p = self.embedding(method)
        labels = [self.train.labels, self.heldout.labels]
        label = (
            np.concatenate([np.asarray(a) for a in labels]).tolist()
            if all(a is not None for a in labels)
            else None
        )
        method = "code" if self.dim <= 2 else method
        projection = None  # the map's axes as codes: point = (code - mean) @ components.T
        if method == "pca":
            projection = {"mean": self.pca.mean_.tolist(),
                          "components": self.pca.components_[:2].tolist()}  # fmt: skip
        return {
            "method": method,
            "invertible": method != "tsne",
            "projection": projection,
            "x": np.round(p[:, 0], 5).tolist(),
            "y": np.round(p[:, 1], 5).tolist(),
            "label": label,
            "n_train": len(self.train),
        }

    def _thumbnail_factor(self) -> int:
        return max(1, math.ceil(max(self.shape[1:]) / THUMBNAIL))

    def thumbnail_size(self) -> tuple[int, int]:
        """A scatter thumbnail's width and height, in pixels."""
        k = self._thumbnail_factor()
        return self.shape[2] // k, self.shape[1] // k

    def sprite(self) -> tuple[bytes, int, int]:
        """Thumbnails of the training then held-out images in one PNG, ``SPRITE_COLUMNS`` a
        row; returns the PNG and a thumbnail's width and height."""
        images = np.concatenate([self.train.images, self.heldout.images])
        c = self.shape[0]
        k = self._thumbnail_factor()
        tw, th = self.thumbnail_size()
        if k > 1:
            t = torch.from_numpy(images[:, :, : th * k, : tw * k])
            images = torch.nn.functional.avg_pool2d(t, k).numpy()
        tiles = to_uint8(images)
        rows = max(1, math.ceil(len(tiles) / SPRITE_COLUMNS))
        sheet = np.full((rows * th, SPRITE_COLUMNS * tw, c), 255, np.uint8)
        for i, tile in enumerate(tiles):
            r, q = divmod(i, SPRITE_COLUMNS)
            sheet[r * th : (r + 1) * th, q * tw : (q + 1) * tw] = tile
        return png(sheet), tw, th

    # -- starting points ------------------------------------------------------------------
    def image(self, index: int) -> np.ndarray:
        """Image ``index`` of the map's points (training images first, then held-out)."""
        n = len(self.train) + len(self.heldout)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
            raise ValueError(f"image={index!r} is not valid; allowed: an index 0 to {n - 1}")
        if index < len(self.train):
            return self.train.images[index]
        return self.heldout.images[index - len(self.train)]

    def random_code(self, approach: str, seed: int) -> np.ndarray:
        """A code drawn as the notebook did: unit by unit in the observed ranges (``units``; a
        variational model: from its prior), or from a Gaussian in the codes' principal
        components (``pca``)."""
        if approach not in APPROACHES:
            raise ValueError(
                f"approach={approach!r} is not valid; allowed: {', '.join(APPROACHES)}"
            )
        if approach == "units":
            if self.variational:  # the model's prior
                return self.run.model.sample_prior(1, np.random.default_rng(seed))[0]
            return generate.random_codes(self.codes_train, 1, random_state=seed)[0]
        return generate.pca_codes(self.codes_train, 1, random_state=seed)[0][0]
