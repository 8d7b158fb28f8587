"""aelab: an autoencoder workbench on PyTorch.

Train the workshop notebook's five autoencoders (and more) on any image set, look inside them,
and measure them against PCA on held-out data.
"""

from ._version import __version__
from .callbacks import Callback, Checkpoint, EarlyStopping
from .data import DATASETS, ImageFolderDataset, ImageSet, load_dataset
from .display import Workshop, open_workshop
from .estimator import Autoencoder
from .explorer import explore
from .models import FAMILIES, MODELS, build_model
from .recipes import resolve
from .runconfig import DataSpec, RunConfig
from .runs import Run, load_run, resume_run, train_run
from .train import TrainConfig, Trainer

__all__ = [
    "DATASETS",
    "FAMILIES",
    "MODELS",
    "Autoencoder",
    "Callback",
    "Checkpoint",
    "DataSpec",
    "EarlyStopping",
    "ImageFolderDataset",
    "ImageSet",
    "Run",
    "RunConfig",
    "TrainConfig",
    "Trainer",
    "Workshop",
    "__version__",
    "build_model",
    "explore",
    "load_dataset",
    "load_run",
    "open_workshop",
    "resolve",
    "resume_run",
    "train_run",
]
