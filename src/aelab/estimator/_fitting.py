"""How :meth:`aelab.Autoencoder.fit` trains: the calibration rows held out, the model built from
the resolved recipe with the seed, aelab's :class:`~aelab.TrainConfig` Trainer, the trackers the
``log`` parameter names, and the trained :class:`~aelab.Run` that the estimator then holds."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from aelab.estimator._layout import seed_of
from aelab.estimator._params import calibration_rows, check_calibration
from aelab.models import Recipe
from aelab.runs.config import RunConfig
from aelab.runs.run import Run
from aelab.training import tracking
from aelab.training.recipes import Resolved
from aelab.training.trainer import Trainer


def train(est: Any, X: np.ndarray, recipe: Recipe, resolved: Resolved) -> tuple[Run, Any]:
    """Train ``est``'s model on the checked ``X`` (its shapes and scaling already set); the run,
    and the rows of ``X`` held out to calibrate the threshold (None: none)."""
    rng = np.random.default_rng(seed_of(est.random_state))
    held = calibration_rows(check_calibration(est.calibration), len(X), rng)
    X_train = X if held is None else np.delete(X, held, axis=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(resolved.train.seed)  # same random_state, same initial weights
        model = recipe.family_class(resolved.model)
    trainer = Trainer(model, resolved.train)
    trackers = []
    if est.log:  # the calibration rows (else the first training rows) as the held-out set
        shown = X[held] if held is not None and len(held) else X_train
        pictures = len(est.sample_shape_) > 1
        heldout = tracking.Heldout(est._to_tensor(shown[: tracking.EMBEDDED]), None, pictures)
        model_params = {"name": est.model, "family": recipe.family, **resolved.model.to_dict()}
        params = {"model": model_params, "train": resolved.train.to_dict()}
        trackers = tracking.trackers(est.log, est.model, params=params, heldout=heldout)
    trainer.fit(est._to_tensor(X_train), progress=bool(est.verbose), desc=est.model,
                callbacks=trackers)  # fmt: skip
    split = {"n_train": len(X_train), "n_heldout": 0, "image_shape": list(est.input_shape_)}
    config = RunConfig.of(est.model, model, resolved.train, split=split)
    return Run(trainer.model.eval(), config, trainer.history), held
