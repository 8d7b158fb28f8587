"""Held-out splits (whole people or a stratified fraction) and true left-right mirrors."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from .datasets import DATASETS
from .folders import ImageFolderDataset
from .images import ImageSet


def mirror(data: ImageSet | ImageFolderDataset) -> ImageSet | ImageFolderDataset:
    """The images followed by their left-right mirrors (width axis flipped), labels repeated.

    The workshop notebook's ``X[::-1]`` reversed the order of the samples: it mirrored nothing.
    Call this after :func:`split`, on each part, so that held-out images' mirrors stay held out.

    Parameters
    ----------
    data : ImageSet or ImageFolderDataset
        A streamed folder gets its mirrors lazily (:meth:`ImageFolderDataset.mirrored`).

    Returns
    -------
    ImageSet or ImageFolderDataset
        ``2 * len(data)`` images: ``data.images`` then ``data.images[..., ::-1]``.
    """
    if isinstance(data, ImageFolderDataset):
        return data.mirrored()
    images = np.concatenate([data.images, data.images[..., ::-1]])
    labels = None if data.labels is None else np.concatenate([data.labels, data.labels])
    return ImageSet(images, labels, data.name, data.class_names, list(data.notes))


def split(
    data: ImageSet | ImageFolderDataset,
    *,
    holdout_people: int | None = None,
    holdout: float = 0.1,
    seed: int = 0,
) -> tuple[ImageSet, ImageSet] | tuple[ImageFolderDataset, ImageFolderDataset]:
    """Split into disjoint ``(train, heldout)`` sets, each in the original order.

    Add mirrors (:func:`mirror`) after splitting, so that a held-out person's mirrors stay held
    out. Only the labels are used, so a streamed folder is split without reading an image, into
    the same parts as the folder loaded into memory.

    Parameters
    ----------
    data : ImageSet or ImageFolderDataset
    holdout_people : int, optional
        Hold out the K largest label values ("the last K people"); needs labels and
        ``1 <= K < n_classes``. Wins over ``holdout``.
    holdout : float, default=0.1
        Otherwise hold out this fraction in [0, 1) at random, stratified by label when every
        class has at least 2 members (0: an empty held-out set).
    seed : int, default=0
        Seeds the random fraction.

    Returns
    -------
    (ImageSet, ImageSet) or (ImageFolderDataset, ImageFolderDataset)
    """
    n = len(data)
    if holdout_people is not None:
        if data.labels is None:
            raise ValueError(
                f"holdout_people={holdout_people} needs labels and {data.name} has none; "
                "use holdout=FRACTION"
            )
        classes = np.unique(data.labels)
        k = holdout_people
        if isinstance(k, bool) or not (isinstance(k, Integral) and 1 <= k < len(classes)):
            raise ValueError(
                f"holdout_people={holdout_people!r} is not valid; expected 1 to "
                f"{len(classes) - 1} for the {len(classes)} people/classes of {data.name}"
            )
        held = np.isin(data.labels, classes[len(classes) - holdout_people :])
        return data.subset(~held), data.subset(held)
    train, held = _fraction(data.labels, n, holdout, seed)
    return data.subset(train), data.subset(held)


def _fraction(
    labels: np.ndarray | None, n: int, holdout: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices ``(train, held)`` of ``n`` items with ``holdout`` of them held out at
    random, stratified by ``labels`` when every class has at least 2 members."""
    if isinstance(holdout, bool) or not (isinstance(holdout, Real) and 0 <= holdout < 1):
        raise ValueError(f"holdout={holdout!r} is not valid; expected a fraction in [0, 1)")
    n_held = math.ceil(holdout * n)
    if n_held == 0:
        return np.arange(n), np.arange(0)
    if n_held >= n:
        raise ValueError(f"holdout={holdout!r} leaves no training images of {n}")
    from sklearn.model_selection import train_test_split

    stratify = None
    if labels is not None:
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() >= 2 and min(n_held, n - n_held) >= len(counts):
            stratify = labels
    train, held = train_test_split(
        np.arange(n), test_size=n_held, random_state=seed, stratify=stratify
    )
    return np.sort(train), np.sort(held)


def carve_validation(
    train: ImageSet | ImageFolderDataset,
    fraction: float,
    *,
    by_people: bool,
    mirrored: bool,
    seed: int = 0,
) -> tuple[ImageSet, ImageSet] | tuple[ImageFolderDataset, ImageFolderDataset]:
    """Split a training set into ``(train, validation)``: the images that choose the epoch
    (early stopping) and anything else a recipe tunes, so the held-out set never does.

    Parameters
    ----------
    train : ImageSet or ImageFolderDataset
        The training part of :func:`split`, mirrors included when ``mirrored``.
    fraction : float
        In (0, 1): the share of training people (``by_people``) or images to carve out.
    by_people : bool
        Carve whole people (the last ones by label), as the held-out set was carved; else a
        stratified random share of the images.
    mirrored : bool
        ``train`` is :func:`mirror`'s output (originals, then their mirrors): an image and its
        mirror always land on the same side.
    seed : int, default=0
    """
    if isinstance(fraction, bool) or not (isinstance(fraction, Real) and 0 < fraction < 1):
        raise ValueError(f"validation={fraction!r} is not valid; expected a fraction in (0, 1)")
    if by_people and train.labels is not None:
        classes = np.unique(train.labels)
        k = max(1, round(fraction * len(classes)))
        if k >= len(classes):
            raise ValueError(f"validation={fraction!r} leaves no training people of {len(classes)}")
        held = np.isin(train.labels, classes[len(classes) - k :])
        return train.subset(~held), train.subset(held)
    n = len(train) // 2 if mirrored else len(train)
    labels = None if train.labels is None else np.asarray(train.labels)[:n]
    keep, held = _fraction(labels, n, fraction, seed)
    if mirrored:
        keep, held = np.concatenate([keep, keep + n]), np.concatenate([held, held + n])
    return train.subset(keep), train.subset(held)


def default_split(name: str) -> dict:
    """Split arguments: ``{"holdout_people": 4}`` for face sets, else ``{"holdout": 0.1}``."""
    info = DATASETS.get(str(name))
    return {"holdout_people": 4} if info is not None and info.group_split else {"holdout": 0.1}
