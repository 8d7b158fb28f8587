"""Decoding one image file with Pillow: refused above a pixel limit before a pixel is decoded,
reduced cheaply when it is much larger than asked for, returned as floats in [0, 1]; and telling
an image file from another file by its content."""

from __future__ import annotations

import functools
import threading
import warnings
from numbers import Integral
from pathlib import Path

import numpy as np

from .images import _available_memory, _bytes_text

MAX_IMAGE_PIXELS = 40_000_000
"""Default ``max_image_pixels``: images with more pixels are refused before they are decoded.

40 million pixels is a 7,300 x 5,500 photograph, larger than any camera's image in a data set of
the sizes aelab trains on, and below Pillow's own limit (``PIL.Image.MAX_IMAGE_PIXELS``, about 89
million), so a small file that decodes to gigabytes (a "decompression bomb") is refused here with
a message naming the file. Decoding takes up to 4 bytes a pixel (RGBA), 160 MB at the limit.
"""

# Images that decode to more than this are checked against the memory available first.
_CHECK_MEMORY_ABOVE = 256 * 2**20

# Formats taken from an image's content alone, when its name has no image extension: those
# Pillow recognises by a signature (an ``accept`` function) and can decode. Formats without a
# signature (TGA, SPIDER, ...) would take some random files for images; EPS (a PostScript
# document, decoded by Ghostscript) and MPEG (a video) are not images to train on.
_NOT_SNIFFED = frozenset({"EPS", "MPEG"})

_PILLOW_LIMIT = threading.Lock()


def _check_max_pixels(value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(
            f"max_image_pixels={value!r} is not valid; expected a positive integer or None "
            "(no limit)"
        )


class _TooLarge(ValueError):
    """An image above ``max_image_pixels``, found from its header."""


def _too_large(size: tuple[int, int] | None, max_pixels: int, pillow_limit: int = 0) -> _TooLarge:
    """``size`` is (W, H) from the header; None when Pillow refused it above ``pillow_limit``."""
    what = (
        f"more than {pillow_limit:,} pixels"
        if size is None
        else f"{size[1]}x{size[0]} is {size[0] * size[1]:,} pixels"
    )
    return _TooLarge(
        f"{what}, above max_image_pixels={max_pixels}; pass a larger max_image_pixels "
        "(or None for no limit) to read it"
    )


def _open(path: Path, max_pixels: int | None):
    """``PIL.Image.open`` (reads the header only), with Pillow's own limit replaced by ours."""
    from PIL import Image

    try:
        return Image.open(path)
    except Image.UnidentifiedImageError:  # its message repeats the path
        raise ValueError("Pillow cannot identify it as an image") from None
    except Image.DecompressionBombError:
        # Pillow refuses images above twice its limit before telling their size. When ours is
        # lower, that image is above ours too; otherwise the caller raised ours on purpose, and
        # Pillow's is lifted for this one open (a lock: the limit is a module global).
        pillow_limit = Image.MAX_IMAGE_PIXELS
        if max_pixels is not None and pillow_limit is not None and max_pixels <= 2 * pillow_limit:
            raise _too_large(None, max_pixels, 2 * pillow_limit) from None
        with _PILLOW_LIMIT:
            Image.MAX_IMAGE_PIXELS = None
            try:
                return Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = pillow_limit


# A large image is reduced (box averages) to no less than this many times the size asked for,
# then blurred to what skimage's anti-aliasing would have done to the whole image, and resized
# exactly: at 4x (not 2x) the result is within about 0.002 on average (0.04 at most) of resizing
# the full image, measured on photographs and noise, at a small fraction of the cost.
_REDUCED_AT_LEAST = 4


def _factor(n: int, target: int) -> int:
    """The reduction factor for ``n`` pixels resized to ``target``: 1, or one that leaves at
    least 4 (at most about 8) times ``target``.

    Among those, the one that divides ``n`` or comes closest: where it does not, the last box
    is partial and stretches the reduced image by the missing pixels, which shifts the exact
    resize's pixels by up to that many (a fraction of an output pixel, but visible).
    """
    largest = n // (_REDUCED_AT_LEAST * target)
    if largest < 2:
        return 1
    candidates = range(max(2, (largest + 1) // 2), largest + 1)
    return min(candidates, key=lambda k: (k * -(-n // k) - n, -k))


def _reduction(size: tuple[int, int], target: tuple[int, int] | None) -> tuple[int, int]:
    """Integer factors ``(x, y)`` that shrink ``size`` (W, H) to no less than 4x ``target``."""
    if target is None:
        return 1, 1
    (w, h), (th, tw) = size, target
    return _factor(w, tw), _factor(h, th)


def _remaining_blur(original: int, reduced: int, target: int) -> float:
    """Gaussian sigma (in reduced pixels) that, after a reduction by ``original / reduced`` and
    before ``skimage.transform.resize(anti_aliasing=True)`` to ``target``, blurs as much as that
    resize does to the original: skimage's sigma is ``(scale - 1) / 2``, variances add, and a box
    of k pixels has variance ``(k**2 - 1) / 12``."""
    k = original / reduced
    whole = max(0.0, (original / target - 1) / 2) ** 2
    after = (k * max(0.0, (reduced / target - 1) / 2)) ** 2
    return max(0.0, whole - after - (k * k - 1) / 12) ** 0.5 / k


def _bytes_per_pixel(mode: str) -> int:
    from PIL import Image

    depth = 4 if mode in ("I", "F") else 2 if mode.startswith("I;16") else 1
    return depth * Image.getmodebands(mode)


def _as_rgb_family(im):
    """A loaded image in one of L, LA, RGB, RGBA, I, I;16*, F (the modes converted below)."""
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA", "I", "F") or mode.startswith("I;16"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA"):
        # a palette with a transparent entry is composited on white, as RGBA images are
        alpha = mode == "PA" or "transparency" in im.info or im.palette.mode == "RGBA"
        return im.convert("RGBA" if alpha else "L" if im.palette.mode == "L" else "RGB")
    return im.convert({"La": "LA", "RGBa": "RGBA"}.get(mode, "RGB"))  # CMYK, YCbCr, LAB, HSV


def _to_float(pixels: np.ndarray) -> np.ndarray:
    """Pillow's pixels as floats in [0, 1], each dtype by its real range."""
    from skimage.util import img_as_float

    if pixels.dtype.kind == "i":  # mode I: Pillow's 16-bit netpbm (and 32-bit TIFF) images
        lo, hi = int(pixels.min()), int(pixels.max())
        if lo < 0 or hi > 65535:
            raise ValueError(
                f"32-bit integer pixels range over [{lo}, {hi}]; expected 16-bit values in "
                "[0, 65535]"
            )
        return np.multiply(pixels, 1.0 / 65535, dtype=np.float64)
    # uint8 / 255, uint16 / 65535 (16-bit PNG and TIFF), float32 kept, as skimage does
    return img_as_float(pixels.astype(pixels.dtype.newbyteorder("="), copy=False))


def _read_image(
    path: Path,
    size: tuple[int, int] | None = None,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """Decode one image file: ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` floats in [0, 1].

    The pixel count is checked against ``max_pixels`` from the header, before decoding. When
    ``size`` (H, W) is given and the image is at least 8 times larger along an axis, it is
    reduced by integer factors (box averages; JPEG decodes at 1/2, 1/4 or 1/8 scale directly) to
    no less than 4 times ``size``, and blurred as much as the exact resize that follows would
    have blurred the whole image: that resize then works on a small image. Images that need no
    reduction decode to the same pixels as ``skimage.io.imread`` gives them.

    Raises ValueError (any exception, for a file that is not an image) saying why, without the
    path: the caller names the file.
    """
    from PIL import Image

    with warnings.catch_warnings():
        # Pillow warns above its limit; ours (lower by default) decides, with an error
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with _open(path, max_pixels) as im:
            w, h = im.size
            if max_pixels is not None and w * h > max_pixels:
                raise _too_large((w, h), max_pixels)
            if max(_reduction(im.size, size)) > 1:
                # JPEG only: decodes at 1/2, 1/4 or 1/8 scale, no smaller than asked
                im.draft(im.mode, (_REDUCED_AT_LEAST * size[1], _REDUCED_AT_LEAST * size[0]))
            kx, ky = _reduction(im.size, size)
            need = im.size[0] * im.size[1] * _bytes_per_pixel(im.mode)
            need += -(-im.size[0] // kx) * -(-im.size[1] // ky) * 4 * 8  # the floats
            if need > _CHECK_MEMORY_ABOVE:
                available = _available_memory()
                if available is not None and need > available:
                    raise ValueError(
                        f"decoding its {h}x{w} pixels takes {_bytes_text(need)} and "
                        f"{_bytes_text(available)} of memory is available"
                    )
            im.load()  # a truncated or corrupt file fails here
            img = _as_rgb_family(im)
            if (kx, ky) != (1, 1):
                img = img.convert("I") if img.mode.startswith("I;16") else img
                img = img.reduce((kx, ky))
            pixels = np.asarray(img)
    img = _to_float(pixels)
    if img.shape[:2] != (h, w):
        from scipy import ndimage

        sigma = [_remaining_blur(n, r, t) for n, r, t in zip((h, w), img.shape, size)]
        img = ndimage.gaussian_filter(img, sigma + [0] * (img.ndim - 2), mode="mirror")
    if img.ndim == 3 and img.shape[-1] == 2:  # grey + alpha: as RGBA, composited on white
        img = np.stack([img[..., 0]] * 3 + [img[..., 1]], axis=-1)
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] in (3, 4))):
        raise ValueError(f"unsupported image shape {img.shape}")
    if not (np.isfinite(img).all() and img.min() >= 0 and img.max() <= 1):
        raise ValueError("pixel values outside [0, 1]")
    return img


@functools.lru_cache(maxsize=1)
def _sniffed_formats() -> tuple[str, ...]:
    from PIL import Image, ImageFile

    Image.init()
    return tuple(
        name
        for name, (factory, accept) in Image.OPEN.items()
        if accept is not None
        and name not in _NOT_SNIFFED
        and not (isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile))
    )


def _is_image_content(path: Path) -> bool:
    """Whether Pillow identifies ``path`` as an image by its signature (reads the header only)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # about files that are not images anyway
            with Image.open(path, formats=_sniffed_formats()):
                return True
    except Image.DecompressionBombError:
        return True  # an image, too large: reading it says so
    except Exception:  # UnidentifiedImageError, a broken header, an unreadable file
        return False
