"""aelab: an autoencoder workbench on PyTorch.

Train the workshop notebook's five autoencoders (and more) on any image set, look inside them,
and measure them against PCA on held-out data.
"""

from ._version import __version__
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
