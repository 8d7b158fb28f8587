"""The estimator's parameters, checked at ``fit`` as scikit-learn checks its own (never in
``__init__``), and turned into what the library takes: recipe overrides and training settings."""

from __future__ import annotations

from typing import Any

import numpy as np

from aelab.analysis import anomaly
from aelab.analysis.detector import check_score
from aelab.estimator._layout import DATA_FORMATS, SCALES, as_int, plain, seed_of
from aelab.models import MODELS, Recipe, get_recipe
from aelab.training import tracking
from aelab.training.recipes import given


def check_params(est: Any) -> Recipe:
    """Every parameter of ``est``, checked; its recipe."""
    recipe = get_recipe(est.model)
    if est.scale not in SCALES:
        raise ValueError(f"scale={est.scale!r} is not valid; allowed: 'auto', 'minmax', None")
    if est.data_format not in DATA_FORMATS:
        raise ValueError(
            f"data_format={est.data_format!r} is not valid; allowed: "
            f"{', '.join(repr(f) for f in DATA_FORMATS)}"
        )
    if est.model_params is not None and not isinstance(est.model_params, dict):
        raise ValueError(f"model_params={est.model_params!r} is not valid; expected a dict or None")
    for key in ("latent_dim", "hidden", "input_shape"):
        if key in (est.model_params or {}):
            raise ValueError(
                f"model_params may not hold {key!r}; "
                + ("input_shape comes from X" if key == "input_shape" else f"pass {key}=")
            )
    if est.noise is not None and not isinstance(est.noise, str):
        raise ValueError(f"noise={est.noise!r} is not valid; expected a string or None")
    check_calibration(est.calibration)
    rate(est)
    check_score(est.anomaly_score, recipe.family_class.variational, est.model)
    tracking.parse_log(est.log)
    return recipe


def check_calibration(c: Any) -> float:
    if isinstance(c, bool) or not isinstance(c, (int, float, np.floating)) or not 0 <= c < 1:
        raise ValueError(
            f"calibration={c!r} is not valid; expected a share of X in [0, 1) (0: set the "
            "threshold on the training data itself, which understates false positives)"
        )
    return float(c)


def rate(est: Any) -> float:
    """The false-positive rate the threshold is set at: ``contamination`` if given."""
    if est.contamination is not None:
        return anomaly.check_rate(est.contamination, "contamination", 0.5)
    return anomaly.check_rate(est.fpr, "fpr")


def calibration_rows(share: float, n: int, rng: np.random.Generator) -> np.ndarray | None:
    """Rows of X held out to set the threshold (None: calibrate on the training rows)."""
    k = round(share * n)
    if share == 0 or k < 1 or n - k < 1:
        return None
    return np.sort(rng.choice(n, k, replace=False))


def train_settings(est: Any) -> dict[str, Any]:
    """The training settings ``est``'s parameters give (None: the recipe's)."""
    settings = given(
        epochs=as_int(est.epochs),
        batch_size=as_int(est.batch_size),
        optimizer=est.optimizer,
        noise=est.noise,  # "none": no noise even where the recipe has some
    )
    return {
        **settings,
        "learning_rate": est.learning_rate,
        "seed": seed_of(est.random_state),
        "device": est.device,
        # kernels chosen by timing differ from run to run in the last bits of the floats
        "conv_kernels": "auto" if est.random_state is None else "default",
    }


def model_overrides(est: Any) -> dict[str, Any]:
    """Model config overrides: ``model_params`` as given (None is a value there), then
    ``latent_dim`` and ``hidden`` unless None (the recipe's)."""
    overrides = {k: plain(v) for k, v in (est.model_params or {}).items()}
    if est.latent_dim is not None:
        overrides["latent_dim"] = as_int(est.latent_dim)
    if est.hidden is not None:
        overrides["hidden"] = tuple(as_int(h) for h in np.atleast_1d(est.hidden).tolist())
    return overrides


def _models_with_a_prior() -> str:
    return ", ".join(repr(n) for n, r in MODELS.items() if r.family_class.has_prior)


class PriorOnly:
    """A method that exists only on estimators whose model has a prior to draw codes from
    (``has_prior``: the variational families and the VQ-VAE).

    ``hasattr(Autoencoder(model="deep"), "sample")`` is False, and calling it says why.
    """

    def __init__(self, fn):
        self.fn = fn
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.fn
        run = getattr(obj, "run_", None)  # fitted: its model; else the recipe's family
        recipe = MODELS.get(obj.model)
        cls = type(run.model) if run is not None else getattr(recipe, "family_class", None)
        if not getattr(cls, "has_prior", False):
            raise AttributeError(
                f"{self.__name__}() is only available for models with a prior "
                f"({_models_with_a_prior()}); model={obj.model!r} has none"
            )
        return self.fn.__get__(obj, owner)


def check_layout(est: Any, recipe: Recipe, X: np.ndarray) -> None:
    """A convolutional recipe takes images, not a table."""
    if recipe.family_class.input_layout == "image" and X.ndim == 2:
        dense = [n for n, r in MODELS.items() if r.family_class.input_layout == "any"]
        raise ValueError(
            f"model={est.model!r} is convolutional and needs images, but X is 2-D with "
            f"shape {X.shape}; pass images shaped (n, H, W) or (n, H, W, C), or use a model "
            f"that takes tables ({', '.join(repr(n) for n in dense)})"
        )
