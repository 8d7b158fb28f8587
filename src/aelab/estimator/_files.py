"""An estimator as a run directory, through the run contract (:mod:`aelab.runconfig`): the
``"estimator"`` section of ``config.json`` keeps its parameters, input shape and scaling."""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.torch import save as safetensors_bytes

from ..runconfig import RunConfig
from ..rundir import RunDir
from ..runs import open_run
from ._layout import plain

if TYPE_CHECKING:
    from ._estimator import Autoencoder


def save(est: Autoencoder, out: Path, *, overwrite: bool) -> Path:
    """Write ``est`` (fitted) as a run directory ``out`` (an earlier one there is replaced only
    with ``overwrite``, and only once this one is whole)."""
    config = run_config(est)  # before touching the folder: it may refuse a parameter
    weights = {k: v.detach().cpu().contiguous() for k, v in est.model_.state_dict().items()}
    with RunDir.create(out, kind="estimator", overwrite=overwrite, name="path") as rundir:
        rundir.write_json("config.json", config.to_dict(), commit=False)
        rundir.write("model.safetensors", safetensors_bytes(weights), commit=False)
        rundir.write_json("history.json", est.history_, commit=False)
        rundir.manifest.complete = True
        rundir.manifest.write(rundir.path)  # once, last: it commits the three files
    return out


def run_config(est: Autoencoder) -> RunConfig:
    """The :class:`RunConfig` of a fitted estimator, with its ``"estimator"`` section."""
    params = {}
    for name, value in est.get_params(deep=False).items():
        if name == "random_state" and not (value is None or isinstance(value, numbers.Integral)):
            value = None  # a RandomState instance: "train.seed" records the seed it gave
        value = plain(value)
        try:
            json.dumps(value)
        except TypeError:
            raise ValueError(
                f"{name}={value!r} cannot be saved as JSON; save() stores parameters in config.json"
            ) from None
        params[name] = value
    scaling = None
    if est.data_min_ is not None:
        scaling = {
            "kind": "minmax",
            "shape": list(est.data_min_.shape),
            "data_min": est.data_min_.ravel().tolist(),
            "data_range": est.data_range_.ravel().tolist(),
        }
    names = getattr(est, "feature_names_in_", None)
    scores = getattr(est, "_calibration_scores", None)
    section = {
        "class": f"{type(est).__module__}.{type(est).__qualname__}",
        "params": params,
        "n_features_in": int(est.n_features_in_),
        "feature_names_in": None if names is None else [str(n) for n in names],
        "sample_shape": list(est.sample_shape_),
        "scaling": scaling,
        # the calibration samples' scores: the threshold at any fpr, and the p-values
        "calibration_scores": None if scores is None else scores.tolist(),
    }
    split = {
        "n_train": int(getattr(est, "_n_samples_fit", 0)),
        "n_heldout": 0,
        "image_shape": list(est.input_shape_),
    }
    return RunConfig.of(est.model, est.model_, est._train_config, split=split, estimator=section)


def _section_of_a_training_run(config: RunConfig) -> dict[str, Any]:
    """The parameters a run of ``aelab train`` implies: images ``(n, C, H, W)`` in [0, 1]."""
    mc, train = config.model_config, config.train
    params = {
        "model": config.model,
        "latent_dim": mc.latent_dim,
        "epochs": train.epochs,
        "batch_size": train.batch_size,
        "optimizer": train.optimizer,
        "learning_rate": train.learning_rate,
        "noise": train.noise or "none",
        "random_state": train.seed,
        "scale": None,
        "data_format": "channels_first",
    }
    if hasattr(mc, "hidden"):
        params["hidden"] = tuple(mc.hidden)
    return {
        "params": params,
        "n_features_in": int(np.prod(mc.input_shape)),
        "feature_names_in": None,
        "sample_shape": list(mc.input_shape),
        "scaling": None,
    }


def load(cls: type[Autoencoder], path: Path, device: str | None) -> Autoencoder:
    """Open a run directory written by ``save`` or by ``aelab train`` as a fitted estimator."""
    config = RunConfig.load(path)
    section = config.estimator or _section_of_a_training_run(config)
    params = dict(section["params"])
    if params.get("hidden") is not None:
        params["hidden"] = tuple(params["hidden"])
    if params.get("model_params") is not None:
        params["model_params"] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in params["model_params"].items()
        }
    est = cls(**params)
    run = open_run(path, config, device if device is not None else est.device)
    est.model_ = run.model  # in eval mode, in the layout fit trained in
    est.history_ = run.history
    est.n_features_in_ = int(section["n_features_in"])
    if section.get("feature_names_in") is not None:
        est.feature_names_in_ = np.asarray(section["feature_names_in"], dtype=object)
    est.sample_shape_ = tuple(section["sample_shape"])
    est.input_shape_ = tuple(run.model.input_shape)
    scaling = section.get("scaling")
    if scaling is None:
        est.data_min_ = est.data_range_ = None
    else:
        shape = tuple(scaling["shape"])
        est.data_min_ = np.asarray(scaling["data_min"], dtype=np.float64).reshape(shape)
        est.data_range_ = np.asarray(scaling["data_range"], dtype=np.float64).reshape(shape)
    scores = section.get("calibration_scores")
    if scores is not None:  # none in a run of aelab train, or of aelab before 0.3
        if not isinstance(scores, list) or not all(isinstance(v, (int, float)) for v in scores):
            raise ValueError(
                f"{path / 'config.json'}: 'calibration_scores' is not a list of numbers"
            )
        est._set_calibration(np.asarray(scores, dtype=np.float64))
    est._train_config = config.train
    est._n_samples_fit = int(config.split.get("n_train", 0))
    return est
