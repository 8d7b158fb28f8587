"""Model families and the named presets that reproduce the workshop notebook's five models.

``FAMILIES`` maps a family name to its class (what ``config.json`` records); ``MODELS`` maps the
names used everywhere (``aelab train NAME``, ``--models``) to a :class:`Preset`: a family, model
defaults and the notebook's training schedule. Presets only set defaults; every field can be
overridden.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .base import BaseAutoencoder, ModelConfig, ModelOutput
from .conv import ConvAutoencoder, ConvConfig, layer_shapes, max_stages
from .dense import DenseAutoencoder, DenseConfig
from .variational import NOTEBOOK_BETA, VAE, ConvVAE, ConvVAEConfig, VAEConfig

FAMILIES: dict[str, type[BaseAutoencoder]] = {
    cls.family: cls for cls in (DenseAutoencoder, ConvAutoencoder, VAE, ConvVAE)
}


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named model: its family, model defaults and the notebook's training schedule."""

    family: str
    description: str
    model: dict[str, Any]
    train: dict[str, Any]


_NOTEBOOK_CONV = {"channels": (32, 64, 128), "latent_dim": 32}

MODELS: dict[str, Preset] = {
    "shallow": Preset(
        "dense",
        "dense, one hidden code layer (notebook model 1: 100 sigmoid units)",
        {"hidden": (), "latent_dim": 100, "latent_activation": "sigmoid"},
        {"epochs": 400, "batch_size": 80, "optimizer": "adam"},
    ),
    "deep": Preset(
        "dense",
        "dense stack 256-20-256 relu (notebook model 2)",
        {"hidden": (256,), "latent_dim": 20, "latent_activation": "relu"},
        {"epochs": 400, "batch_size": 80, "optimizer": "adam"},
    ),
    "conv": Preset(
        "conv",
        "convolutional, 3 conv/pool stages, 32 relu code units (notebook model 3)",
        _NOTEBOOK_CONV,
        {"epochs": 200, "batch_size": 80, "optimizer": "adam"},
    ),
    "denoising": Preset(
        "conv",
        "the conv model trained on noisy inputs, clean targets (notebook model 4)",
        _NOTEBOOK_CONV,
        {"epochs": 100, "batch_size": 32, "optimizer": "adam", "noise": "gaussian:0.05"},
    ),
    "vae": Preset(
        "vae",
        "dense variational, 512 relu units, 2-D latent (notebook model 5)",
        {"hidden": (512,), "latent_dim": 2, "beta": NOTEBOOK_BETA},
        {"epochs": 200, "batch_size": 32, "optimizer": "rmsprop"},
    ),
    "conv-vae": Preset(
        "conv-vae",
        "convolutional variational, the conv model's layers around a 16-D Gaussian code",
        {"channels": (32, 64, 128), "latent_dim": 16, "beta": NOTEBOOK_BETA},
        {"epochs": 100, "batch_size": 32, "optimizer": "adam"},
    ),
}


def _unknown(name: str) -> ValueError:
    return ValueError(f"model={name!r} is not a known model; allowed: {', '.join(MODELS)}")


def model_config(name: str, input_shape: tuple[int, ...], **overrides: Any) -> ModelConfig:
    """The config of preset ``name`` for images of ``input_shape`` ``(C, H, W)``.

    ``overrides`` replace preset fields (``None`` values are ignored). A convolutional preset on
    images too small for all of its stages keeps as many stages as fit, unless ``channels`` is
    given explicitly.
    """
    if name not in MODELS:
        raise _unknown(name)
    preset = MODELS[name]
    cls = FAMILIES[preset.family].config_class
    fields = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise ValueError(
            f"{unknown[0]} is not a parameter of model {name!r}; allowed: "
            f"{', '.join(sorted(fields - {'input_shape'}))}"
        )
    kwargs = {**preset.model, **given, "input_shape": tuple(input_shape)}
    if "channels" in kwargs and "channels" not in given:
        n = max_stages(kwargs["input_shape"], kwargs.get("kernel_size", 3))
        kwargs["channels"] = tuple(kwargs["channels"])[: max(1, n)]
    return cls(**kwargs)


def build_model(name: str, input_shape: tuple[int, ...], **overrides: Any) -> BaseAutoencoder:
    """Build preset ``name`` (see ``MODELS``) for images of ``input_shape`` ``(C, H, W)``.

    Examples
    --------
    >>> model = build_model("conv", (1, 64, 64))
    >>> model.num_parameters()
    884257
    """
    config = model_config(name, input_shape, **overrides)
    return FAMILIES[MODELS[name].family](config)


def model_from_config(family: str, config: dict[str, Any]) -> BaseAutoencoder:
    """Rebuild a model from the family name and config dict that ``config.json`` records."""
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is not known; allowed: {', '.join(FAMILIES)}")
    cls = FAMILIES[family]
    return cls(cls.config_class.from_dict(config))


__all__ = [
    "FAMILIES",
    "MODELS",
    "VAE",
    "BaseAutoencoder",
    "ConvAutoencoder",
    "ConvConfig",
    "ConvVAE",
    "ConvVAEConfig",
    "DenseAutoencoder",
    "DenseConfig",
    "ModelConfig",
    "ModelOutput",
    "Preset",
    "VAEConfig",
    "build_model",
    "layer_shapes",
    "model_config",
    "model_from_config",
]
