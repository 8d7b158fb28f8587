"""Folders of image files: listed without reading a pixel, loaded into memory
(:func:`load_image_folder`) or read one image at a time (:class:`ImageFolderDataset`), and
written (:func:`write_image_folder`, synthetic images for tests and benchmarks)."""

from __future__ import annotations

import copy
import io
import os
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .images import (
    IMAGE_EXTENSIONS,
    ImageSet,
    _check_channels,
    _fit_image,
    _read_image,
    parse_image_size,
)


def _listing(names: list[str], at_most: int = 5) -> str:
    return ", ".join(names[:at_most]) + (", ..." if len(names) > at_most else "")


def _is_image(name: str) -> bool:
    base = os.path.basename(name)
    return not base.startswith(".") and os.path.splitext(base)[1].lower() in IMAGE_EXTENSIONS


def _visible_files(folder: Path, sub: str) -> list[str]:
    """Files under ``folder/sub`` (recursively) relative to ``folder``, sorted, skipping hidden
    folders. Names come from the directory entries alone (no per-file ``stat``)."""
    found = []
    for root, dirs, files in os.walk(folder / sub):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(root, folder)
        found += [os.path.join(rel, f) for f in sorted(files)]
    return found


@dataclass(frozen=True)
class _FolderListing:
    """What a folder of images holds, found without reading a pixel."""

    files: list[str]  # image paths relative to the folder, in reading order
    labels: np.ndarray  # (N,) int64 index into class_names; -1 when unlabelled
    class_names: list[str] | None
    notes: list[str]


def _list_image_folder(folder: Path) -> _FolderListing:
    """The images of a folder: one subfolder per class, or images only (unlabelled).

    Listing 100,000 files takes well under a second: names and entry types come from one
    ``os.scandir``/``os.walk`` per folder.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"path='{folder}' is not a folder")
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    top_files = [e.name for e in entries if e.is_file()]
    subdirs = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    top_images = [f for f in top_files if _is_image(f)]
    skipped = [f for f in top_files if not _is_image(f)]
    class_files = {}
    for d in subdirs:
        files = _visible_files(folder, d)
        images = [f for f in files if _is_image(f)]
        skipped += [f for f in files if not _is_image(f)]
        if images:
            class_files[d] = images
    if top_images and class_files:
        raise ValueError(
            f"{folder} mixes images ({top_images[0]}) with class subfolders "
            f"({next(iter(class_files))}/); use one subfolder per class or images only"
        )
    class_names = list(class_files) or None
    if class_names:
        files = [f for name in class_names for f in class_files[name]]
        labels = np.repeat(
            np.arange(len(class_names), dtype=np.int64), [len(class_files[c]) for c in class_names]
        )
    else:
        files, labels = top_images, np.full(len(top_images), -1, dtype=np.int64)
    if not files:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    notes = [f"skipped {len(skipped)} non-image files ({_listing(skipped)})"] if skipped else []
    return _FolderListing(files, labels, class_names, notes)


class _UnreadableImage(ValueError):
    """An image file that cannot be decoded; the caller says what to do about it."""


def _image_file(
    path: Path,
    size: tuple[int, int] | None,
    channels: int,
    reference: tuple[Path, tuple[int, int]] | None = None,
) -> np.ndarray:
    """One image file as a folder is read: ``(C, H, W)`` float32 in [0, 1].

    Without ``size``, an image whose size differs from ``reference`` (the folder's first image:
    its path and ``(H, W)``) is an error.
    """
    try:
        img = _read_image(path)
    except Exception as e:
        raise _UnreadableImage(f"cannot read image {path}: {' '.join(str(e).split())}") from e
    if size is None and reference is not None and img.shape[:2] != reference[1]:
        (h0, w0), (h1, w1) = reference[1], img.shape[:2]
        raise ValueError(
            f"images differ in size: {reference[0]} is {h0}x{w0}, {path} is {h1}x{w1}; "
            "pass image_size to resize them all"
        )
    return _fit_image(img, size, channels)


def load_image_folder(
    path: str | os.PathLike,
    *,
    image_size: str | int | tuple | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
) -> ImageSet:
    """A folder of images: one subfolder per class (labels), or images only (unlabelled).

    Classes are the subfolders holding images, sorted by name (label = index in
    ``class_names``). Files that are not images by extension (``.DS_Store``, ``README``) are
    skipped and counted in one note; hidden folders are ignored. :class:`ImageFolderDataset`
    reads the same folder one image at a time instead.

    Parameters
    ----------
    path : str or path-like
        The folder.
    image_size : str, int or tuple, optional
        ``(H, W)`` to resize every image to (see :func:`parse_image_size`); default the first
        image's size, and images of different sizes are then an error.
    channels : {1, 3}, optional
        1 (default): grayscale; 3: colour (grayscale images are replicated).
    skip_bad : bool, default=False
        Skip unreadable images (reported in a note) instead of raising.

    Returns
    -------
    ImageSet
    """
    folder = Path(path)
    size = parse_image_size(image_size)
    _check_channels(channels)
    listing = _list_image_folder(folder)
    notes = list(listing.notes)
    images, labels, bad, reference = [], [], [], None
    for rel, label in zip(listing.files, listing.labels.tolist()):
        p = folder / rel
        try:
            img = _image_file(p, size, channels or 1, reference)
        except _UnreadableImage as e:
            if not skip_bad:
                raise ValueError(
                    f"{e}; pass skip_bad=True to skip unreadable images"
                ) from e.__cause__
            bad.append(rel)
            continue
        if reference is None:
            reference = (p, img.shape[1:])
        images.append(img)
        labels.append(label)
    if bad:
        notes.append(f"skipped {len(bad)} unreadable images ({_listing(bad)})")
    if not images:
        raise ValueError(f"{folder} holds no readable images ({len(bad)} unreadable)")
    x = np.ascontiguousarray(np.stack(images))  # (N, C, H, W)
    y = np.asarray(labels, dtype=np.int64) if listing.class_names else None
    return ImageSet(x, y, str(path), listing.class_names, notes)


class ImageFolderDataset(Dataset):
    """A folder of images read one image at a time, for data sets larger than memory.

    Lists the files (and labels from class subfolders) as :func:`load_image_folder` does without
    reading pixels; ``dataset[i]`` reads, decodes and resizes image ``i`` exactly as
    :func:`load_image_folder` would. Only relative paths (one bytes array), labels and mirror
    flags are held, so ``DataLoader`` workers share the dataset without copying it.

    Parameters
    ----------
    path : str or path-like
        The folder: one subfolder per class, or images only.
    image_size : str, int or tuple, optional
        ``(H, W)`` to resize every image to; default the first image's size (read once here),
        and an image of another size is then an error when it is read.
    channels : {1, 3}, optional
        1 (default): grayscale; 3: colour.
    mirror : bool, default=False
        Add left-right mirrors: item ``i >= n`` is item ``i - n`` with the width axis flipped,
        labels repeated, as :func:`mirror` does in memory.

    Attributes
    ----------
    labels : ndarray of int64 or None
        One per item, from the class subfolders.
    class_names : list of str or None
    image_shape : tuple
        ``(C, H, W)`` of every item.
    notes : list of str
        Messages for the user (skipped non-image files).

    Examples
    --------
    >>> data = ImageFolderDataset("photos/", image_size=64)       # doctest: +SKIP
    >>> train, heldout = split(data, holdout=0.1)                 # doctest: +SKIP
    >>> train[0].shape                                            # doctest: +SKIP
    torch.Size([1, 64, 64])
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        image_size: str | int | tuple | None = None,
        channels: int | None = None,
        mirror: bool = False,
    ) -> None:
        self.root = Path(path)
        self.name = str(path)
        self._size = parse_image_size(image_size)
        _check_channels(channels)
        self.channels = channels or 1
        listing = _list_image_folder(self.root)
        self.class_names = listing.class_names
        self.labels = listing.labels if listing.class_names else None
        self.notes = list(listing.notes)
        self._files = np.array([os.fsencode(f) for f in listing.files])  # (N,) bytes
        self._flipped = np.zeros(len(self._files), dtype=bool)
        self._reference: tuple[Path, tuple[int, int]] | None = None
        if self._size is None:  # the first image fixes the size, as in load_image_folder
            first = self.root / listing.files[0]
            self._reference = (first, self._read(first).shape[1:])
        if mirror:
            self._files, self._flipped, self.labels = self._mirrored_arrays()

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Image ``index`` as a float32 tensor ``(C, H, W)`` in [0, 1]."""
        x = self._read(self.root / os.fsdecode(self._files[index]))  # (C, H, W)
        if self._flipped[index]:
            x = x[..., ::-1]
        return torch.from_numpy(np.ascontiguousarray(x))

    def _read(self, path: Path) -> np.ndarray:
        try:
            return _image_file(path, self._size, self.channels, self._reference)
        except _UnreadableImage as e:
            raise ValueError(
                f"{e}; remove it, or load the folder into memory (stream=False) with "
                "skip_bad=True to skip unreadable images"
            ) from e.__cause__

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one item."""
        h, w = self._size if self._size is not None else self._reference[1]
        return (self.channels, int(h), int(w))

    def subset(self, index: np.ndarray) -> ImageFolderDataset:
        """The items picked by an integer index array or a mask (reads nothing)."""
        index = np.asarray(index)
        out = copy.copy(self)
        out._files, out._flipped = self._files[index], self._flipped[index]
        out.labels = None if self.labels is None else self.labels[index]
        out.notes = list(self.notes)
        return out

    def mirrored(self) -> ImageFolderDataset:
        """The items followed by their left-right mirrors, as :func:`mirror` (reads nothing)."""
        out = copy.copy(self)
        out._files, out._flipped, out.labels = self._mirrored_arrays()
        out.notes = list(self.notes)
        return out

    def _mirrored_arrays(self):
        files = np.concatenate([self._files, self._files])
        flipped = np.concatenate([self._flipped, ~self._flipped])
        labels = None if self.labels is None else np.concatenate([self.labels, self.labels])
        return files, flipped, labels

    def load(self) -> ImageSet:
        """Every item read into memory, as an :class:`ImageSet`."""
        images = [self[i].numpy() for i in range(len(self))]
        images = np.stack(images) if images else np.zeros((0, *self.image_shape), np.float32)
        labels = None if self.labels is None else self.labels.copy()
        return ImageSet(images, labels, self.name, self.class_names, list(self.notes))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, {len(self)} images of "
            f"{'x'.join(map(str, self.image_shape))})"
        )


def write_image_folder(
    path: str | os.PathLike,
    n: int,
    *,
    image_size: str | int | tuple = 64,
    n_classes: int = 0,
    seed: int = 0,
) -> Path:
    """Write ``n`` synthetic grayscale PNG images: smooth random blobs, for tests and benchmarks.

    Each image is a random 8x8 pattern upsampled bilinearly to ``image_size`` and encoded with
    fast PNG compression: about 0.3 ms of CPU per 64x64 image, so creating the files on disk
    is most of the cost.

    Parameters
    ----------
    path : str or path-like
        The folder, created if missing.
    n : int
        Number of images: image ``i`` is ``{i:06d}.png``.
    image_size : str, int or tuple, default=64
        ``(H, W)`` of every image (see :func:`parse_image_size`).
    n_classes : int, default=0
        0: images only (unlabelled); else image ``i`` goes into subfolder ``class_{i % n_classes}``.
    seed : int, default=0

    Returns
    -------
    Path
        The folder.
    """
    from PIL import Image

    h, w = parse_image_size(image_size)
    for name, value in (("n", n), ("n_classes", n_classes)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
            raise ValueError(f"{name}={value!r} is not valid; expected an integer >= 0")
    root = Path(path)
    folders = [root / f"class_{k}" for k in range(n_classes)] or [root]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    digits = max(6, len(str(n - 1)))
    for i in range(n):
        small = Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8))
        png = io.BytesIO()
        small.resize((w, h), Image.Resampling.BILINEAR).save(png, format="PNG", compress_level=1)
        (folders[i % len(folders)] / f"{i:0{digits}d}.png").write_bytes(png.getvalue())
    return root
