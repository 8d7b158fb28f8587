"""Images in memory: the :class:`ImageSet` every loader returns, reading one image file, and
bringing images to one size and number of channels."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class ImageSet:
    """Images ``(N, C, H, W)`` (float32 in [0, 1], C-contiguous) with optional int64 labels."""

    images: np.ndarray
    labels: np.ndarray | None
    name: str
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)

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

    def subset(self, index: np.ndarray) -> ImageSet:
        """The rows picked by an integer index array or a mask (keeps name, classes, notes)."""
        index = np.asarray(index)
        labels = None if self.labels is None else self.labels[index]
        images = np.ascontiguousarray(self.images[index])
        return ImageSet(images, labels, self.name, self.class_names, list(self.notes))


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
    imgs = data.images.transpose(0, 2, 3, 1)
    out = [_fit_image(img[..., 0] if c == 1 else img, size, channels) for img in imgs]
    return dataclasses.replace(data, images=np.ascontiguousarray(np.stack(out)))


def _read_image(path: Path) -> np.ndarray:
    from skimage.io import imread
    from skimage.util import img_as_float

    img = np.asarray(imread(path))
    if img.ndim == 4:  # frames (a GIF): the first
        img = img[0]
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] == 2:  # grey + alpha: as RGBA, composited on white
        img = np.stack([img[..., 0]] * 3 + [img[..., 1]], axis=-1)
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] in (3, 4))):
        raise ValueError(f"unsupported image shape {img.shape}")
    img = img_as_float(img)
    if not (np.isfinite(img).all() and img.min() >= 0 and img.max() <= 1):
        raise ValueError("pixel values outside [0, 1]")
    return img
