"""Images from ``.npy`` / ``.npz`` array files: never unpickled, and checked from their headers
(shape, dtype, size against the file and the memory available) before any data is read."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from .images import ImageSet, _available_memory, _bytes_text

ARRAY_EXTENSIONS = (".npy", ".npz")
_ALLOWED = "expected uint8 or floats in [0, 1]"


class _ArrayError(ValueError):
    """What is wrong with an array file, in a message that names it."""


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _read_header(fp, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from the ``.npy`` header at ``fp``'s position."""
    try:
        version = npy_format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(fp)
        else:  # 3.0 holds only structured arrays (non-latin-1 field names): not images
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except Exception as e:
        raise _ArrayError(f"cannot read {where}: not a .npy array ({_one_line(e)})") from e
    if dtype.hasobject:  # refused here, before numpy is asked to read it
        raise _ArrayError(
            f"cannot read {where}: it holds Python objects (dtype {dtype}), which are never "
            f"unpickled (allow_pickle=False); {_ALLOWED}"
        )
    if any(d < 0 for d in shape):
        raise _ArrayError(f"cannot read {where}: its header declares the shape {shape}")
    return shape, fortran, dtype


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return int(np.prod(shape, dtype=object)) * dtype.itemsize


def _check_data(where: str, shape, dtype, have: int) -> None:
    """The data a header declares is in the file: else it is truncated, and nothing is read."""
    need = _nbytes(shape, dtype)
    if need > have:
        raise _ArrayError(
            f"cannot read {where}: its header declares {shape} {dtype} ({_bytes_text(need)}) "
            f"and it holds {_bytes_text(max(have, 0))} of data; the file is truncated or damaged"
        )


def _check_images(path: Path, shape, dtype) -> None:
    if not (len(shape) == 3 or (len(shape) == 4 and shape[-1] in (1, 3))) or 0 in shape:
        raise _ArrayError(
            f"{path}: images have shape {shape}; expected (N, H, W) or (N, H, W, C), C = 1 or 3, "
            "with N, H and W at least 1"
        )
    if dtype != np.uint8 and dtype.kind != "f":
        raise _ArrayError(f"{path}: images have dtype {dtype}; {_ALLOWED}")


def _check_memory(path: Path, shape, held: int) -> None:
    """The float32 images (plus ``held`` bytes read first) fit in the memory available."""
    n, h, w = shape[:3]
    c = shape[3] if len(shape) == 4 else 1
    need, available = n * c * h * w * 4 + held, _available_memory()
    if available is not None and need > available:
        raise _ArrayError(
            f"{path}: its {n:,} images of {c}x{h}x{w} take {_bytes_text(need)} in memory (as "
            f"float32) and {_bytes_text(available)} is available"
        )


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, check) -> np.ndarray:
    """One ``.npy`` member of an archive, read after ``check(shape, dtype)`` accepts its header."""
    with archive.open(info) as f:
        shape, fortran, dtype = _read_header(f, where)
        _check_data(where, shape, dtype, info.file_size - f.tell())
        check(shape, dtype)
        nbytes = _nbytes(shape, dtype)
        data = f.read(nbytes)
    if len(data) != nbytes:  # the archive's directory said more than the member holds
        _check_data(where, shape, dtype, len(data))
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with zipfile.ZipFile(path) as archive:
        members = {i.filename[:-4]: i for i in archive.infolist() if i.filename.endswith(".npy")}
        key = next((k for k in ("images", "x", "X") if k in members), None)
        if key is None and len(members) == 1:
            key = next(iter(members))
        if key is None:
            raise _ArrayError(f"{path} holds {sorted(members)}; expected the images under 'images'")
        x = _member(
            archive,
            members[key],
            f"{path} ({key})",
            lambda shape, dtype: (
                _check_images(path, shape, dtype),
                _check_memory(path, shape, _nbytes(shape, dtype)),
            ),
        )
        label_key = next((k for k in ("labels", "y") if k in members and k != key), None)
        if label_key is None:
            return x, None

        def check_labels(shape, dtype):
            if dtype.kind not in "iu" or shape != (len(x),):
                raise _ArrayError(
                    f"{path}: labels have dtype {dtype} and shape {shape}; expected integers of "
                    f"shape ({len(x)},)"
                )

        return x, _member(archive, members[label_key], f"{path} ({label_key})", check_labels)


def _load_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        shape, fortran, dtype = _read_header(f, str(path))
        offset = f.tell()
        _check_data(str(path), shape, dtype, os.fstat(f.fileno()).st_size - offset)
    _check_images(path, shape, dtype)
    _check_memory(path, shape, 0)
    # mapped, not read: the pixels are read once, into the float32 images
    return np.memmap(path, dtype, "r", offset, shape, order="F" if fortran else "C")


def _as_images(path: Path, x: np.ndarray) -> np.ndarray:
    """``(N, H, W[, C])`` uint8 or floats in [0, 1] -> ``(N, C, H, W)`` float32, one copy."""
    if x.dtype.kind == "f":
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise _ArrayError(f"{path}: {bad} NaN or inf pixel values; {_ALLOWED}")
        lo, hi = x.min(), x.max()
        if lo < 0 or hi > 1:
            raise _ArrayError(f"{path}: pixels range over [{lo:g}, {hi:g}]; {_ALLOWED}")
    source = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    images = np.empty(source.shape, np.float32)
    images[...] = source
    if x.dtype == np.uint8:
        images /= np.float32(255)
    return images


def load_array(path: str | os.PathLike) -> ImageSet:
    """Images from a ``.npy`` or ``.npz`` file (never unpickled).

    Images have shape ``(N, H, W)`` or ``(N, H, W, C)`` with C in {1, 3}, dtype ``uint8``
    (divided by 255) or floats in [0, 1]. A ``.npz`` keeps them under ``images`` (or ``x``/``X``,
    or as its only array), with optional integer ``labels`` (or ``y``) of length N. Shapes and
    dtypes are checked from the file's headers, and so are its size (a truncated file) and the
    memory the images take, before the pixels are read.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ImageSet

    Raises
    ------
    ValueError
        One line naming the file: what it holds and what is allowed.
    """
    path = Path(path)
    if path.suffix.lower() not in ARRAY_EXTENSIONS:
        raise ValueError(f"{path} is not a .npy or .npz file")
    try:
        x, y = (_load_npy(path), None) if path.suffix.lower() == ".npy" else _load_npz(path)
        images = _as_images(path, x)
    except _ArrayError:
        raise
    except Exception as e:  # a damaged archive (zipfile, zlib), an unreadable file
        raise ValueError(f"cannot read {path}: {_one_line(e)}") from e
    del x  # the memory map, if any
    if y is not None:
        if y.dtype.kind == "u" and len(y) and y.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{path}: labels reach {y.max()}; expected int64 integers")
        y = y.astype(np.int64)
    return ImageSet(images, y, str(path))
