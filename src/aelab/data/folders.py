"""Folders of image files: listed without reading a pixel, loaded into memory
(:func:`load_image_folder`) or read one image at a time (:class:`ImageFolderDataset`), and
written (:func:`write_image_folder`, synthetic images for tests and benchmarks)."""

from __future__ import annotations

import copy
import io
import os
import re
from collections.abc import Iterator
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import PixelCache, cache_dir, folder_cache
from .images import ImageSet, _check_channels, _check_memory, _fit_image, parse_image_size
from .listing import _list_image_folder, _listing
from .reading import MAX_IMAGE_PIXELS, _check_max_pixels, _read_image


class _UnreadableImage(ValueError):
    """An image file that cannot be decoded; the caller says what to do about it."""


def _check_flag(name: str, value: bool) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} is not valid; expected True or False")


def _image_file(
    path: Path,
    size: tuple[int, int] | None,
    channels: int,
    reference: tuple[Path, tuple[int, int]] | None = None,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """One image file as a folder is read: ``(C, H, W)`` float32 in [0, 1].

    Without ``size``, an image whose size differs from ``reference`` (the folder's first image:
    its path and ``(H, W)``) is an error.
    """
    try:
        img = _read_image(path, size, max_pixels)
    except Exception as e:  # whatever a corrupt file makes the decoder raise
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
    follow_links: bool = False,
    max_image_pixels: int | None = MAX_IMAGE_PIXELS,
    class_order: str = "natural",
) -> ImageSet:
    """A folder of images: one subfolder per class (labels), or images only (unlabelled).

    Classes are the subfolders holding images, sorted by name as people read it (``s1, s2, ...,
    s10``; ``class_order="name"``: ``s1, s10, s2``, as aelab 0.2.1 did) (label = index in
    ``class_names``). A file is an image when its extension is one of
    :data:`~aelab.data.IMAGE_EXTENSIONS` or else when Pillow identifies its content (a PNG
    named without an extension); any format Pillow decodes is read, netpbm (``.pgm``,
    ``.ppm``) and 16-bit PNG and TIFF (scaled by 65535) included. Other files (``.DS_Store``,
    ``README``) are skipped and counted in one note, as are symbolic links unless
    ``follow_links``; hidden folders are ignored. :class:`ImageFolderDataset` reads the same
    folder one image at a time instead.

    Parameters
    ----------
    path : str or path-like
        The folder.
    image_size : str, int or tuple, optional
        ``(H, W)`` to resize every image to (see :func:`parse_image_size`); default the first
        image's size, and images of different sizes are then an error. A size at which the
        images would not fit in the memory available is refused before anything is read.
    channels : {1, 3}, optional
        1 (default): grayscale; 3: colour (grayscale images are replicated).
    skip_bad : bool, default=False
        Skip unreadable images (reported in a note) instead of raising.
    follow_links : bool, default=False
        Read symbolic links to files and folders, wherever they point (each folder once: a
        link back to a folder above it is skipped and noted). By default they are skipped and
        counted in a note, so nothing outside the folder is read.
    max_image_pixels : int or None, default=MAX_IMAGE_PIXELS
        Refuse images with more pixels (40 million; see
        :data:`~aelab.data.reading.MAX_IMAGE_PIXELS`), found from the file's header before
        decoding; None: no limit. Images much larger than ``image_size`` are reduced cheaply
        while decoding.

    Returns
    -------
    ImageSet
    """
    folder = Path(path)
    size = parse_image_size(image_size)
    _check_channels(channels)
    _check_max_pixels(max_image_pixels)
    _check_flag("skip_bad", skip_bad)
    _check_flag("follow_links", follow_links)
    listing = _list_image_folder(folder, follow_links, class_order)
    channels, n = channels or 1, len(listing.files)
    if size is not None:  # refused before a file is read
        _check_memory(n, (channels, *size), image_size)
    x, labels, bad, reference, read = None, [], [], None, []
    for rel, label in zip(listing.files, listing.labels.tolist()):
        p = folder / rel
        try:
            img = _image_file(p, size, channels, reference, max_image_pixels)
        except _UnreadableImage as e:
            if not skip_bad:
                raise ValueError(
                    f"{e}; pass skip_bad=True to skip unreadable images"
                ) from e.__cause__
            bad.append(rel)
            continue
        if x is None:  # the first image: the set is allocated once, at its full size
            if size is None:
                _check_memory(n, img.shape, image_size)
            reference, x = (p, img.shape[1:]), np.empty((n, *img.shape), np.float32)
        x[len(labels)] = img
        labels.append(label)
        read.append(rel)
    notes = list(listing.notes)
    if bad:
        notes.append(f"skipped {len(bad)} unreadable images ({_listing(bad)})")
    if x is None:
        raise ValueError(f"{folder} holds no readable images ({len(bad)} unreadable)")
    y = np.asarray(labels, dtype=np.int64) if listing.class_names else None
    return ImageSet(x[: len(labels)], y, str(path), listing.class_names, notes, files=read)


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
        and an image of another size is then an error when it is read. A size at which one
        image would not fit in the memory available is refused here.
    channels : {1, 3}, optional
        1 (default): grayscale; 3: colour.
    mirror : bool, default=False
        Add left-right mirrors: item ``i >= n`` is item ``i - n`` with the width axis flipped,
        labels repeated, as :func:`mirror` does in memory.
    follow_links : bool, default=False
        Read symbolic links to files and folders, as :func:`load_image_folder` does.
    class_order : {"natural", "name"}, default="natural"
        The classes' order, as :func:`load_image_folder`'s.
    max_image_pixels : int or None, default=MAX_IMAGE_PIXELS
        Refuse images with more pixels, as :func:`load_image_folder` does; None: no limit.
    cache : None, True or path-like, default=None
        Keep decoded pixels in a memory-mapped file under this folder (True: the default one,
        :func:`~aelab.data.cache.default_cache_dir`), read back by later epochs in any process,
        bit for bit what decoding gives (:mod:`aelab.data.cache`). Where it cannot be made (no
        room, no permission) a note says why and images are decoded every time. None: off.

    Attributes
    ----------
    labels : ndarray of int64 or None
        One per item, from the class subfolders.
    class_names : list of str or None
    image_shape : tuple
        ``(C, H, W)`` of every item.
    notes : list of str
        Messages for the user (skipped non-image files and symbolic links, the pixel cache).
    skipped
        What the listing passed over, every name relative to the folder: ``files`` (not images,
        or not regular files), ``links`` (not followed), ``dead_links``, ``folders``.

    Notes
    -----
    An unreadable image raises a one-line ValueError naming the file when it is read. Read in a
    ``DataLoader`` worker process, torch re-raises it with the worker's traceback in the
    message; :func:`worker_error_message` recovers the line.

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
        follow_links: bool = False,
        max_image_pixels: int | None = MAX_IMAGE_PIXELS,
        cache: bool | str | os.PathLike | None = None,
        class_order: str = "natural",
    ) -> None:
        self.root = Path(path)
        self.name = str(path)
        self._size = parse_image_size(image_size)
        _check_channels(channels)
        _check_max_pixels(max_image_pixels)
        _check_flag("follow_links", follow_links)
        where = cache_dir(cache)
        self.channels = channels or 1
        self.max_image_pixels = max_image_pixels
        if self._size is not None:  # one image and a batch are held at a time
            _check_memory(1, (self.channels, *self._size), image_size, streamed=True)
        listing = _list_image_folder(self.root, follow_links, class_order)
        self.class_names = listing.class_names
        self.labels = listing.labels if listing.class_names else None
        self.notes = list(listing.notes)
        self.skipped = listing.skipped
        self._files = np.array([os.fsencode(f) for f in listing.files])  # (N,) bytes
        self._flipped = np.zeros(len(self._files), dtype=bool)
        self._slots = np.arange(len(self._files))  # each item's cache slot: its file's place
        self._listed = self._files  # the whole listing, indexed by a slot (subsets share it)
        self._reference: tuple[Path, tuple[int, int]] | None = None
        self._cache: PixelCache | None = None
        first = None
        if self._size is None:  # the first image fixes the size, as in load_image_folder
            first = self._read(self.root / listing.files[0])
            self._reference = (self.root / listing.files[0], first.shape[1:])
        if where is not None:
            options = {"channels": self.channels, "image_size": self._size}
            options |= {"max_image_pixels": max_image_pixels, "follow_links": bool(follow_links)}
            self._cache, note = folder_cache(
                where, self.root, listing.files, options, self.image_shape, first
            )
            self.notes += [note] if note else []
        if mirror:
            self._files, self._flipped, self._slots, self.labels = self._mirrored_arrays()

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Image ``index`` as a float32 tensor ``(C, H, W)`` in [0, 1]."""
        x = self._item(index)  # (C, H, W)
        if self._flipped[index]:
            x = x[..., ::-1]
        return torch.from_numpy(np.ascontiguousarray(x))

    def __getitems__(self, indices) -> list[torch.Tensor]:
        """Items ``indices`` (a batch, as ``DataLoader`` asks for it): with a pixel cache, those
        cached are read in one go, the others decoded and stored (:meth:`PixelCache.fetch`)."""
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self._cache is None:
            return [self[i] for i in index.tolist()]
        batch = self._cache.fetch(self._slots[index], lambda j: self._decode(index[j]))
        flipped = self._flipped[index]
        batch[flipped] = batch[flipped][..., ::-1]
        return list(torch.from_numpy(batch).unbind(0))

    def _item(self, index: int) -> np.ndarray:
        """Item ``index`` unflipped: from the pixel cache, else decoded (and stored there)."""
        if self._cache is None:
            return self._decode(index)
        return self._cache.fetch(self._slots[[index]], lambda _: self._decode(index))[0]

    def _decode(self, index: int) -> np.ndarray:
        return self._read(self.root / os.fsdecode(self._files[index]))

    def _read(self, path: Path) -> np.ndarray:
        # The message is the whole story (file, reason, remedy) on one line: in a DataLoader
        # worker, torch passes on only its text, inside the worker's traceback.
        try:
            return _image_file(
                path, self._size, self.channels, self._reference, self.max_image_pixels
            )
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

    @property
    def cached_items(self) -> int:
        """How many items the pixel cache holds (0 without one)."""
        return 0 if self._cache is None else self._cache.filled(self._slots)

    @property
    def cache_path(self) -> Path | None:
        """The pixel cache's file, ``<cache>/<key>/pixels.bin`` (None without one)."""
        return None if self._cache is None else self._cache.path

    def listing(self) -> Iterator[tuple[str, int, bool]]:
        """``(name, size, flipped)`` of each item, in order, reading no pixels: the file's path
        relative to the folder, its size in bytes (-1 when it is gone) and whether the item is
        a mirror. What identifies a streamed set (``aelab.runs`` fingerprints it)."""
        for raw, flipped in zip(self._files.tolist(), self._flipped.tolist()):
            name = os.fsdecode(raw)
            try:
                size = os.stat(self.root / name).st_size
            except OSError:
                size = -1
            yield name, size, flipped

    def origins(self) -> np.ndarray:
        """Each item's index in the folder's listing (a mirror: its file's): its slot."""
        return self._slots

    @property
    def files(self) -> list[str]:
        """The listing's files, relative to the folder, indexed by :meth:`origins`."""
        return [os.fsdecode(f) for f in self._listed.tolist()]

    def subset(self, index: np.ndarray) -> ImageFolderDataset:
        """The items picked by an integer index array or a mask (reads nothing)."""
        index = np.asarray(index)
        out = copy.copy(self)
        out._files, out._flipped = self._files[index], self._flipped[index]
        out._slots = self._slots[index]
        out.labels = None if self.labels is None else self.labels[index]
        out.notes = list(self.notes)
        return out

    def mirrored(self) -> ImageFolderDataset:
        """The items followed by their left-right mirrors, as :func:`mirror` (reads nothing)."""
        out = copy.copy(self)
        out._files, out._flipped, out._slots, out.labels = self._mirrored_arrays()
        out.notes = list(self.notes)
        return out

    def _mirrored_arrays(self):
        files = np.concatenate([self._files, self._files])
        flipped = np.concatenate([self._flipped, ~self._flipped])
        slots = np.concatenate([self._slots, self._slots])  # a mirror shares its file's slot
        labels = None if self.labels is None else np.concatenate([self.labels, self.labels])
        return files, flipped, slots, labels

    def load(self) -> ImageSet:
        """Every item read into memory, as an :class:`ImageSet`."""
        _check_memory(len(self), self.image_shape, self._size)
        images = np.empty((len(self), *self.image_shape), np.float32)
        for i in range(len(self)):
            images[i] = self[i].numpy()
        labels = None if self.labels is None else self.labels.copy()
        return ImageSet(images, labels, self.name, self.class_names, list(self.notes),
                        self._slots.copy(), self.files)  # fmt: skip

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


def worker_error_message(exc: BaseException) -> str:
    """The one-line message of an error raised in a ``DataLoader`` worker process.

    torch re-raises a worker's exception in the training process as the same type whose
    message is ``"Caught ValueError in DataLoader worker process 0. Original Traceback ..."``
    followed by the whole traceback. The original message is its last line, after the type
    (``ValueError: cannot read image ...``); that is returned without the type. Any other
    exception's message is returned as it is.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    str
    """
    text = str(exc)
    if "in DataLoader worker process" not in text or "Traceback" not in text:
        return text
    lines = [line for line in text.splitlines() if line.strip()]
    return re.sub(r"^[A-Za-z_][\w.]*: ", "", lines[-1])  # traceback's "module.Type: message"
