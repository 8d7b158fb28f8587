"""aelab: an autoencoder workbench on PyTorch.

Train the workshop notebook's five autoencoders (and more) on any image set, look inside them,
and measure them against PCA on held-out data.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aelab")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

from .data import DATASETS, ImageFolderDataset, ImageSet, load_dataset
from .estimator import Autoencoder
from .models import FAMILIES, MODELS, build_model
from .runs import DataSpec, Run, load_run, train_run
from .train import TrainConfig, Trainer

__all__ = [
    "DATASETS",
    "FAMILIES",
    "MODELS",
    "Autoencoder",
    "DataSpec",
    "ImageFolderDataset",
    "ImageSet",
    "Run",
    "TrainConfig",
    "Trainer",
    "__version__",
    "build_model",
    "load_dataset",
    "load_run",
    "train_run",
]
