"""An estimator as a run directory, through the run contract (:mod:`aelab.runs.config`): the
``"estimator"`` section of ``config.json`` keeps its parameters, input shape, scaling and
calibration scores; :func:`estimator_section` reads it back (for
:meth:`aelab.Autoencoder.from_run`)."""

from __future__ import annotations

import dataclasses
import json
import numbers
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.torch import save as safetensors_bytes

from aelab.estimator._layout import plain
from aelab.runs.config import RunConfig
from aelab.runs.rundir import RunDir

if TYPE_CHECKING:
    from aelab.estimator._estimator import Autoencoder


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
    """The :class:`RunConfig` of a fitted estimator: its run's, with an ``"estimator"`` section."""
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
    scores = est.calibration_scores_
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
    return dataclasses.replace(est.run_.config, estimator=section)


def estimator_section(config: RunConfig) -> dict[str, Any]:
    """The ``"estimator"`` section of a run's config, checked: ``params`` as the constructor
    takes them, the sample shape, ``scaling`` as ``(data_min, data_range)`` (or ``(None,
    None)``) and the calibration scores (None). A run of ``aelab train`` has none: its section
    is the one it implies."""
    section = dict(config.estimator or _section_of_a_training_run(config))
    source = "config.json"
    try:
        params = dict(section["params"])
        if params.get("hidden") is not None:
            params["hidden"] = tuple(params["hidden"])
        if params.get("model_params") is not None:
            params["model_params"] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in params["model_params"].items()
            }
        scaling = section.get("scaling")
        if scaling is None:
            section["scaling"] = (None, None)
        else:
            shape = tuple(scaling["shape"])
            section["scaling"] = tuple(
                np.asarray(scaling[k], dtype=np.float64).reshape(shape)
                for k in ("data_min", "data_range")
            )
        section["sample_shape"] = tuple(int(s) for s in section["sample_shape"])
        section["n_features_in"] = int(section["n_features_in"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{source}: 'estimator' is not valid ({e})") from None
    _check_shapes(section, tuple(config.model_config.input_shape), source)
    section["params"] = params
    scores = section.get("calibration_scores")
    if scores is not None:  # none in a run of aelab train, or of aelab before 0.3
        if not isinstance(scores, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores
        ):
            raise ValueError(f"{source}: 'calibration_scores' is not a list of numbers")
    return section


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


def _check_shapes(section: dict[str, Any], input_shape: tuple[int, ...], source: str) -> None:
    """The sample shape, feature count and scaling of a record agree with the model's input (an
    edited shape would otherwise size the arrays it scores: gigabytes from a number)."""
    shape, n = section["sample_shape"], int(np.prod(input_shape))
    if not 1 <= len(shape) <= 3 or min(shape) < 1 or int(np.prod(shape)) != n:
        raise ValueError(
            f"{source}: 'estimator.sample_shape' is {list(shape)}; expected 1 to 3 positive sizes "
            f"of {n} values in all, as the model's input {list(input_shape)}"
        )
    if section["n_features_in"] != n:
        raise ValueError(
            f"{source}: 'estimator.n_features_in' is {section['n_features_in']}; expected {n}"
        )
    for array in section["scaling"]:
        if array is None:
            continue
        try:
            fits = np.broadcast_shapes(array.shape, (1, *shape)) == (1, *shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"{source}: 'estimator.scaling' has shape {list(array.shape)}, which does not "
                f"fit samples of shape {list(shape)}"
            )
