"""aelab: an autoencoder workbench on PyTorch.

Train the workshop notebook's five autoencoders (and more) on any image set, look inside them,
and measure them against PCA on held-out data.
"""

# First: OpenMP reads its wait policy once, when torch loads it (aelab.utils.openmp)
from aelab.utils import openmp as _openmp  # noqa: F401

# isort: split
from aelab.apps.display import Workshop, open_workshop
from aelab.apps.explorer import explore
from aelab.data.spec import DataSpec
from aelab.runs.config import RunConfig
from aelab.runs.run import Run, load_run
from aelab.runs.training import resume_run, train_run
from aelab.training.callbacks import Callback, Checkpoint, EarlyStopping
from aelab.training.config import TrainConfig
from aelab.training.recipes import resolve
from aelab.training.trainer import Trainer

from ._version import __version__
from .data import DATASETS, ImageFolderDataset, ImageSet, load_dataset
from .estimator import Autoencoder
from .models import FAMILIES, MODELS, build_model

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
