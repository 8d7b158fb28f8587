"""Model families and the named recipes that reproduce the workshop notebook's five models.

``FAMILIES`` maps a family name to its class (what ``config.json`` records); ``MODELS`` maps the
names used everywhere (``aelab train NAME``, ``--models``, ``Autoencoder(model=NAME)``) to a
:class:`Recipe`: a family, model defaults and a training schedule. Each family's file registers
its class and its recipes (:mod:`aelab.models.registry`); importing it below is the one line a
new family adds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import (  # noqa: F401  (each registers its family and recipes)
    aligned,
    contractive,
    conv,
    dense,
    sparse,
    variational,
    vqvae,
)
from .aligned import AlignedAutoencoder, AlignedConfig
from .base import BaseAutoencoder, ModelConfig, ModelOutput
from .conv import ConvAutoencoder, ConvConfig, layer_shapes, max_stages
from .dense import DenseAutoencoder, DenseConfig
from .registry import (
    FAMILIES,
    MODELS,
    QuickBudget,
    Recipe,
    get_recipe,
    register_family,
    register_model,
)
from .variational import VAE, ConvVAE, ConvVAEConfig, VAEConfig


def model_config(name: str, input_shape: tuple[int, ...], **overrides: Any) -> ModelConfig:
    """The config of recipe ``name`` for images of ``input_shape`` ``(C, H, W)``.

    ``overrides`` replace recipe fields, taken as given (``None`` is a value, e.g. a linear
    ``output_activation``; leave a field out to keep the recipe's). A convolutional recipe on
    images too small for all of its stages keeps as many stages as fit, unless ``channels`` is
    given.
    """
    recipe = get_recipe(name)
    cls = recipe.family_class.config_class
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"{unknown[0]} is not a parameter of model {name!r}; allowed: "
            f"{', '.join(sorted(fields - {'input_shape'}))}"
        )
    kwargs = {**recipe.model, **overrides, "input_shape": tuple(input_shape)}
    if "channels" in kwargs and "channels" not in overrides:
        n = max_stages(kwargs["input_shape"], kwargs.get("kernel_size", 3))
        kwargs["channels"] = tuple(kwargs["channels"])[: max(1, n)]
    return cls(**kwargs)


def build_model(name: str, input_shape: tuple[int, ...], **overrides: Any) -> BaseAutoencoder:
    """Build recipe ``name`` (see ``MODELS``) for images of ``input_shape`` ``(C, H, W)``.

    Examples
    --------
    >>> model = build_model("conv", (1, 64, 64))
    >>> model.num_parameters()
    884257
    """
    return model_from_config(get_recipe(name).family, model_config(name, input_shape, **overrides))


def model_from_config(family: str, config: ModelConfig | dict[str, Any]) -> BaseAutoencoder:
    """The model of ``family`` for ``config``: a config object, or the dict ``config.json``
    records."""
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is not known; allowed: {', '.join(FAMILIES)}")
    cls = FAMILIES[family]
    if isinstance(config, dict):
        config = cls.config_class.from_dict(config)
    return cls(config)


__all__ = [
    "FAMILIES",
    "MODELS",
    "VAE",
    "AlignedAutoencoder",
    "AlignedConfig",
    "BaseAutoencoder",
    "ConvAutoencoder",
    "ConvConfig",
    "ConvVAE",
    "ConvVAEConfig",
    "DenseAutoencoder",
    "DenseConfig",
    "ModelConfig",
    "ModelOutput",
    "QuickBudget",
    "Recipe",
    "VAEConfig",
    "build_model",
    "get_recipe",
    "layer_shapes",
    "model_config",
    "model_from_config",
    "register_family",
    "register_model",
]
