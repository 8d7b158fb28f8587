"""One resolution of "a model recipe, a schedule and the user's overrides" into the configs a run
trains with. ``aelab train``, ``aelab run``, ``aelab bench`` and ``aelab.Autoencoder`` all call
:func:`resolve`, so a name means the same model and the same training everywhere.

Two words, two things: a *recipe* is a named model (``deep``, ``vae``; see
:mod:`aelab.models.registry`); a *schedule* is how long and in what batches it trains:

``seed``
    the recipe's own schedule: for the notebook's five, the notebook's exactly (epochs
    400/400/200/100/200, batch sizes 80/80/80/32/32, Adam or RMSprop with Keras' defaults).
``quick``
    the recipe's optimizer and noise, but a bounded number of images seen (its
    :class:`~aelab.models.QuickBudget`), so that the whole workshop runs in minutes on a laptop
    CPU: epochs fall as the data set or its images grow. Its model may differ from the seed
    schedule's where the budget says (``QuickBudget.model``): the notebook's deep, conv and
    denoising models see a centred input, which keeps their ReLU code units alive.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from aelab.models import ModelConfig, Recipe, get_recipe, model_config
from aelab.training.config import SCHEDULES, TrainConfig
from aelab.training.noise import parse_noise
from aelab.utils.choices import not_one_of
from aelab.utils.device import resolve_device, resolve_precision
from aelab.utils.memory import check_fits

_QUICK_PIXELS = 28 * 28  # a quick budget counts images of this many values


def quick_schedule(
    name: str, n_train: int, image_shape: tuple[int, ...] = (1, 28, 28)
) -> dict[str, Any]:
    """Recipe ``name``'s ``quick`` schedule for ``n_train`` images of ``image_shape``."""
    recipe = get_recipe(name)
    budget = recipe.quick
    images = budget.images * _QUICK_PIXELS / math.prod(image_shape)
    schedule = dict(recipe.train)
    epochs = round(images / max(n_train, 1))
    schedule["epochs"] = int(min(budget.max_epochs, max(budget.min_epochs, epochs)))
    schedule["batch_size"] = max(schedule.get("batch_size", 64), budget.min_batch_size)
    return schedule


def schedule(
    name: str,
    which: str = "seed",
    *,
    n_train: int | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """The :class:`TrainConfig` fields of recipe ``name`` under schedule ``which``."""
    if which not in SCHEDULES:
        raise not_one_of("schedule", which, SCHEDULES)
    if which == "quick":
        if n_train is None or image_shape is None:
            raise ValueError("schedule='quick' needs n_train and image_shape (it scales with them)")
        return quick_schedule(name, n_train, image_shape)
    return dict(get_recipe(name).train)


@dataclasses.dataclass(frozen=True)
class Resolved:
    """What :func:`resolve` gives: the recipe, the model's config and the training config."""

    recipe: Recipe
    model: ModelConfig
    train: TrainConfig


def resolve(
    name: str,
    input_shape: tuple[int, ...],
    *,
    schedule_name: str = "seed",
    n_train: int | None = None,
    model: Mapping[str, Any] | None = None,
    train: Mapping[str, Any] | None = None,
) -> Resolved:
    """Recipe ``name`` for images of ``input_shape``, trained on ``schedule_name``, with
    overrides; everything validated once.

    Parameters
    ----------
    name : str
        A recipe in :data:`aelab.models.MODELS`.
    input_shape : tuple of int
        ``(C, H, W)`` of the training images.
    schedule_name : {"seed", "quick"}, default="seed"
        See the module's docstring; ``quick`` needs ``n_train``.
    n_train : int, optional
        Training images per epoch.
    model : mapping, optional
        Fields of the family's config, taken as given (leave a field out to keep the recipe's).
    train : mapping, optional
        :class:`TrainConfig` fields, taken as given, on top of the schedule; ``noise="none"``
        turns a recipe's noise off.

    Returns
    -------
    Resolved

    Raises
    ------
    ValueError
        For an unknown name, field or value, and for a model and batch that would not fit in
        the training device's free memory (counted before anything is allocated).
    """
    recipe = get_recipe(name)
    quick = recipe.quick.model if schedule_name == "quick" else {}
    config = model_config(name, input_shape, **{**quick, **dict(model or {})})
    fields = schedule(name, schedule_name, n_train=n_train, image_shape=tuple(input_shape))
    fields.update(train or {})
    if parse_noise(fields.get("noise")) is None:
        fields["noise"] = None  # "none" and "" are no noise, recorded as null
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{unknown[0]} is not a training setting; allowed: {', '.join(known)}")
    train_config = TrainConfig(**fields)
    device = resolve_device(train_config.device)
    if train_config.precision == "auto":  # decided now, so that config.json says which
        precision = resolve_precision("auto", device, shown=recipe.autocast_bf16)
        train_config = dataclasses.replace(train_config, precision=precision)
    check_fits(recipe.family_class, config, train_config.batch_size, device)
    return Resolved(recipe, config, train_config)


def given(**values: Any) -> dict[str, Any]:
    """The values that were given: drops ``None`` (a flag or parameter left unset)."""
    return {k: v for k, v in values.items() if v is not None}


__all__ = ["SCHEDULES", "Resolved", "given", "quick_schedule", "resolve", "schedule"]
