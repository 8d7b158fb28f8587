"""The two registries every entry point reads: model families and the named model recipes.

A *family* is a class (``dense``, ``conv``, ``vae``...): what ``config.json`` records, with its
capabilities on the class (:class:`~aelab.models.base.BaseAutoencoder`). A *recipe* is a named
model (``shallow``, ``deep``, ``conv``...): a family, defaults for its config and the training
schedule it comes with (for the notebook's five, the notebook's). ``aelab train NAME``,
``aelab run --models``, ``Autoencoder(model=NAME)`` and the report all take recipe names.

Both register where they are defined, as timm's models do: a family's file decorates its class
with :func:`register_family` and calls :func:`register_model` for its recipes, so a new family is
one file plus one import line in ``models/__init__.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from aelab.utils.choices import not_one_of

if TYPE_CHECKING:
    from .base import BaseAutoencoder

FAMILIES: dict[str, type[BaseAutoencoder]] = {}


@dataclasses.dataclass(frozen=True)
class QuickBudget:
    """How much a recipe trains under the ``quick`` schedule: ``images`` seen in all (counted in
    28x28 images: a 64x64 image counts 5.2), within ``min_epochs`` and ``max_epochs``; batches of
    at least ``min_batch_size`` images; and ``model``, fields of the family's config the quick
    schedule sets (a centred input: its few hundred steps leave the ReLU codes of uncentred images
    mostly dead, :class:`aelab.models.base.Centred`)."""

    images: int = 150_000
    min_epochs: int = 8
    max_epochs: int = 200
    min_batch_size: int = 1
    model: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named model: its family, defaults for the family's config, and its training schedule.

    Recipes only set defaults; every field can be overridden (:func:`aelab.recipes.resolve`).
    """

    name: str
    family: str
    description: str
    model: Mapping[str, Any]  # defaults for the family's config
    train: Mapping[str, Any]  # the schedule (TrainConfig fields): the `seed` schedule
    quick: QuickBudget = QuickBudget()  # the `quick` schedule
    report_embeddings: bool = False  # the report draws PCA and t-SNE of its codes
    autocast_bf16: bool = False  # precision="auto" trains it in bfloat16 autocast where the
    #   device computes in bf16 natively: the benchmark showed, over 3 seeds of its seed schedule,
    #   its mean held-out MSE in bf16 no worse than float32's by more than float32's own standard
    #   deviation over the seeds (analysis.spread.within_spread, benchmarks/README.md)

    @property
    def family_class(self) -> type[BaseAutoencoder]:
        return FAMILIES[self.family]


MODELS: dict[str, Recipe] = {}

F = TypeVar("F", bound=type)


def register_family(cls: F) -> F:
    """Class decorator: make ``cls`` known under ``cls.family`` (what ``config.json`` records)."""
    name = cls.family
    if not name or name in FAMILIES:
        raise ValueError(f"family={name!r} is empty or already registered")
    FAMILIES[name] = cls
    return cls


def register_model(recipe: Recipe) -> Recipe:
    """Make ``recipe`` known under its name, for every entry point."""
    if recipe.name in MODELS:
        raise ValueError(f"a model named {recipe.name!r} is already registered")
    if recipe.family not in FAMILIES:
        raise ValueError(
            f"model {recipe.name!r} names family={recipe.family!r}, which is not registered; "
            f"allowed: {', '.join(FAMILIES)}"
        )
    MODELS[recipe.name] = recipe
    return recipe


def unknown_model(name: object) -> ValueError:
    """The error for a name that is not a registered recipe."""
    return not_one_of("model", name, MODELS, what="is not a known model")


def get_recipe(name: object) -> Recipe:
    """The recipe registered as ``name``; an error listing the known ones otherwise."""
    if not isinstance(name, str) or name not in MODELS:
        raise unknown_model(name)
    return MODELS[name]
