"""Images in memory: the :class:`ImageSet` every loader returns, the file extensions taken as
images, bringing images to one size and number of channels, and the memory that takes."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np

# Extensions of the formats Pillow decodes, taken as images without looking inside (a file
# without one is an image when Pillow identifies its content). Not here: formats Pillow only
# identifies (MPEG, and stubs such as HDF5 or GRIB) and EPS, which needs Ghostscript.
IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
    ".pgm", ".ppm", ".pnm", ".pbm", ".pfm",  # netpbm: the classic face sets (ORL, Yale)
    ".apng", ".avif", ".avifs", ".blp", ".bw", ".cur", ".dcx", ".dds", ".dib", ".fit", ".fits",
    ".flc", ".fli", ".ftc", ".ftu", ".gbr", ".icb", ".icns", ".ico", ".im", ".j2c", ".j2k",
    ".jfif", ".jp2", ".jpc", ".jpe", ".jpf", ".jpx", ".msp", ".pcx", ".psd", ".pxr", ".qoi",
    ".ras", ".rgb", ".rgba", ".sgi", ".tga", ".vda", ".vst", ".xbm", ".xpm",
)  # fmt: skip


@dataclass
class ImageSet:
    """Images ``(N, C, H, W)`` (float32 in [0, 1], C-contiguous) with optional int64 labels.

    ``origin``: each image's index in the set as it was loaded, before any split or mirror (None:
    this is that set); ``files``: the names of the loaded set's images (a folder's, relative to
    it), indexed by ``origin``. Both let a file that names images (:mod:`aelab.data.groups`)
    find them in a part of a split."""

    images: np.ndarray
    labels: np.ndarray | None
    name: str
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    origin: np.ndarray | None = None
    files: list[str] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images have shape {self.images.shape}; expected (N, C, H, W)")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.labels)} labels for {len(self.images)} images")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(int(s) for s in self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def origins(self) -> np.ndarray:
        """Each image's index in the set as loaded (:attr:`origin`, else ``0..N-1``)."""
        return np.arange(len(self)) if self.origin is None else np.asarray(self.origin)

    def subset(self, index: np.ndarray) -> ImageSet:
        """The rows picked by an integer index array or a mask (keeps name, classes, notes,
        and where each row came from)."""
        index = np.asarray(index)
        labels = None if self.labels is None else self.labels[index]
        images = np.ascontiguousarray(self.images[index])
        return ImageSet(images, labels, self.name, self.class_names, list(self.notes),
                        self.origins()[index], self.files)  # fmt: skip


def parse_image_size(value: str | int | tuple | None) -> tuple[int, int] | None:
    """``"64"``, ``"64x48"`` (height x width), ``64`` or ``(64, 48)`` as ``(H, W)``; None stays."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.strip().lower().split("x")
        size = tuple(int(p) if p.strip().isdigit() else -1 for p in parts)
    elif isinstance(value, Integral) and not isinstance(value, bool):
        size = (int(value),)
    elif isinstance(value, (tuple, list)) and all(
        isinstance(v, Integral) and not isinstance(v, bool) for v in value
    ):
        size = tuple(int(v) for v in value)
    else:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise ValueError(
            f"image_size={value!r} is not valid; use H or HxW with positive integers, e.g. 64x48"
        )
    return size


def _check_channels(channels: int | None) -> None:
    if channels not in (None, 1, 3):
        raise ValueError(f"channels={channels!r} is not valid; allowed: 1 (grey) or 3 (colour)")


def _fit_image(img: np.ndarray, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """One float image ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` in [0, 1] -> ``(C, H', W')``."""
    from skimage.color import gray2rgb, rgb2gray, rgba2rgb
    from skimage.transform import resize

    if img.ndim == 3 and img.shape[-1] == 4:
        img = rgba2rgb(img)
    if channels == 1 and img.ndim == 3:
        img = rgb2gray(img)
    elif channels == 3 and img.ndim == 2:
        img = gray2rgb(img)
    if size is not None and img.shape[:2] != tuple(size):
        img = resize(img, size, anti_aliasing=True)
    img = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _convert(data: ImageSet, image_size, channels: int | None) -> ImageSet:
    """Resize / change channels of a loaded set the way folders are read (only when asked)."""
    size = parse_image_size(image_size)
    _check_channels(channels)
    c, h, w = data.image_shape
    if (size is None or size == (h, w)) and channels in (None, c):
        return data
    channels = channels or c
    shape = (channels, *(size or (h, w)))
    _check_memory(len(data), shape, image_size)
    out = np.empty((len(data), *shape), np.float32)
    for i, img in enumerate(data.images.transpose(0, 2, 3, 1)):
        out[i] = _fit_image(img[..., 0] if c == 1 else img, size, channels)
    return dataclasses.replace(data, images=out)


def _available_memory() -> int | None:
    """Bytes of memory available now: ``MemAvailable`` (Linux), else the physical memory."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): not checked
        return None


def _bytes_text(n: int) -> str:
    """``n`` bytes for people: ``"37.3 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError  # unreachable


def _check_memory(
    n: int, shape: tuple[int, int, int], image_size, *, streamed: bool = False
) -> None:
    """Refuse ``n`` float32 images of ``shape`` (C, H, W) that would not fit in memory.

    In memory the set is allocated once (plus one image being decoded); streamed, one image
    and a batch are held at a time, so there only a single image larger than memory is refused.
    ``image_size`` is the parameter's value as given, for the message (None: the first image's).
    """
    c, h, w = shape
    available, one = _available_memory(), c * h * w * 4
    need = one if streamed else n * one
    if available is None or need + (0 if streamed else one) <= available:
        return
    given = f"image_size={image_size!r}" if image_size else f"the first image's size, {h}x{w},"
    what = "one image" if streamed else f"{n:,} images"
    take = "takes" if streamed or n == 1 else "take"
    raise ValueError(
        f"{given} is too large: {what} of {c}x{h}x{w} {take} {_bytes_text(need)} as float32 and "
        f"{_bytes_text(available)} of memory is available; pass a smaller image_size"
        + ("" if streamed else ", or stream the images from disk (stream=True)")
    )
