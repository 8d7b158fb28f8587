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
    origin = np.concatenate([data.origins(), data.origins()])  # a mirror is its image's
    return ImageSet(images, labels, data.name, data.class_names, list(data.notes), origin,
                    data.files)  # fmt: skip


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


# A folder of subfolders holds out whole subfolders by default when it looks like people: at
# least this many subfolders, each with at least FEW images, and no more images in the median
# subfolder than there are subfolders (40 people of 10 faces: yes; 10 digits of 500: no).
MANY_FOLDERS, FEW = 10, 3


def folder_split(data: ImageSet | ImageFolderDataset) -> tuple[dict, str] | None:
    """The default split of a folder whose every image is in a subfolder with at least a few
    images each, and the line that says so (None for any other folder).

    A folder that looks like people (many subfolders of few images each, :data:`MANY_FOLDERS`)
    holds out its last 10% of subfolders whole (at least one), as Olivetti holds out people:
    the measure is then how a model does on people it never saw. Any other holds out 10% of
    each subfolder's images at random (stratified): held-out digits of every class, not one
    class whole.
    """
    if data.labels is None or not data.class_names:
        return None
    counts = np.bincount(np.asarray(data.labels), minlength=len(data.class_names))
    n, least = len(counts), int(counts.min())
    if least < FEW:
        return None
    where = f"every image of {data.name} is in one of {n} subfolders, {least} or more each"
    if n >= MANY_FOLDERS and np.median(counts) <= n:
        k = max(1, round(0.1 * n))
        held = ", ".join(data.class_names[n - k :][:5]) + (", ..." if k > 5 else "")
        return {"holdout_people": k}, (
            f"{where}, as people's faces are: held out the last {k} whole ({held}); pass "
            "holdout=0.1 to hold out random images of every subfolder instead"
        )
    return {"holdout": 0.1}, (
        f"{where}: held out 10% of each one's images at random; pass holdout_people=K to hold "
        "out the last K subfolders whole (people) instead"
    )
