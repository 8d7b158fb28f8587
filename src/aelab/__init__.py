"""aelab: an autoencoder workbench on PyTorch.

Train the workshop notebook's five autoencoders (and more) on any image set, look inside them,
and measure them against PCA on held-out data.

The public API below is imported on first use, all of it at once (as an eager import would:
``apps.display`` registers Run's Jupyter view): ``import aelab`` itself imports neither torch nor
scikit-learn, so that ``aelab --version`` and ``aelab --help`` answer at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# First: OpenMP reads its wait policy once, when torch loads it (aelab.utils.openmp)
from aelab.utils import openmp as _openmp  # noqa: F401
from aelab.utils import views as _views

from ._version import __version__


def _run_html(run: Any) -> str:
    """A Run's Jupyter view, by the display application, imported when a run is first shown
    (a run opened through ``aelab.runs`` alone shows itself too)."""
    return importlib.import_module("aelab.apps.display").run_html(run)


_views.RUN_HTML.append(_run_html)

if TYPE_CHECKING:
    from aelab.apps.display import Workshop, open_workshop
    from aelab.apps.explorer import explore
    from aelab.data import DATASETS, ImageFolderDataset, ImageSet, load_dataset
    from aelab.data.spec import DataSpec
    from aelab.estimator import Autoencoder
    from aelab.models import FAMILIES, MODELS, build_model
    from aelab.runs.config import RunConfig
    from aelab.runs.run import Run, load_run
    from aelab.runs.training import resume_run, train_run
    from aelab.training.callbacks import Callback, Checkpoint, EarlyStopping
    from aelab.training.config import TrainConfig
    from aelab.training.recipes import resolve
    from aelab.training.trainer import Trainer

# each public name and the module that defines it (the imports above, for type checkers)
_API = {
    "aelab.apps.display": ("Workshop", "open_workshop"),
    "aelab.apps.explorer": ("explore",),
    "aelab.data": ("DATASETS", "ImageFolderDataset", "ImageSet", "load_dataset"),
    "aelab.data.spec": ("DataSpec",),
    "aelab.estimator": ("Autoencoder",),
    "aelab.models": ("FAMILIES", "MODELS", "build_model"),
    "aelab.runs.config": ("RunConfig",),
    "aelab.runs.run": ("Run", "load_run"),
    "aelab.runs.training": ("resume_run", "train_run"),
    "aelab.training.callbacks": ("Callback", "Checkpoint", "EarlyStopping"),
    "aelab.training.config": ("TrainConfig",),
    "aelab.training.recipes": ("resolve",),
    "aelab.training.trainer": ("Trainer",),
}


def __getattr__(name: str) -> Any:
    if not any(name in names for names in _API.values()):
        raise AttributeError(f"module 'aelab' has no attribute {name!r}")
    for module, names in _API.items():
        loaded = importlib.import_module(module)
        globals().update({n: getattr(loaded, n) for n in names})
    return globals()[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
