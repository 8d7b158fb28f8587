"""Code quality: k-nearest-neighbour label accuracy (Cover & Hart 1967), dead units, maximum
activations."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.neighbors import NearestNeighbors

from aelab.analysis.metrics._checks import _codes, _labels, _positive_int


def _vote(neighbour_classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority class per row; ties go to the smallest class index (as in sklearn)."""
    n, k = neighbour_classes.shape
    counts = np.zeros((n, n_classes), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(n), k), neighbour_classes.ravel()), 1)
    return counts.argmax(axis=1)


def knn_accuracy(
    codes: ArrayLike,
    labels: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    reference_labels: ArrayLike | None = None,
    groups: ArrayLike | None = None,
    k: int = 1,
) -> float:
    """k-nearest-neighbour label accuracy of codes (Euclidean distance, majority vote).

    Two modes:

    * **With a reference set** (``reference`` and ``reference_labels``): each code is classified
      by its ``k`` nearest neighbours in ``reference`` (e.g. held-out codes against training
      codes). This only makes sense when the held-out labels occur in the reference set.
    * **Leave-one-out** (no reference): each code is classified by its ``k`` nearest neighbours
      among the *other* codes of the same array; a point is never its own neighbour, even when
      it has exact duplicates. With ``groups``, neighbours that share the query's group are
      excluded as well (an image and its mirror image share a group and must not vote for each
      other). This is how a held-out set of people never seen in training is scored: their
      labels are absent from the training set, so train->test kNN cannot be right by design,
      while leave-one-out within the held-out codes asks whether the encoder puts other images
      of the same unseen person close together.

    Ties in the vote go to the smallest label, as in
    :class:`sklearn.neighbors.KNeighborsClassifier`; ties in distance are broken by
    :class:`sklearn.neighbors.NearestNeighbors`' order.

    Parameters
    ----------
    codes : array_like, shape (N, D)
        The codes to classify.
    labels : array_like, shape (N,)
        Their true labels.
    reference, reference_labels : array_like, shape (M, D) and (M,), optional
        A labelled reference set; give both or neither.
    groups : array_like, shape (N,), optional
        Group ids for leave-one-out; neighbours in the query's group are skipped. Not allowed
        with a reference set.
    k : int, default 1
        Number of neighbours that vote.

    Returns
    -------
    float
        The fraction of codes whose predicted label equals their label.
    """
    codes = _codes(codes)
    n = codes.shape[0]
    labels = _labels(labels, n, "labels")
    k = _positive_int(k, "k")
    if (reference is None) != (reference_labels is None):
        raise ValueError(
            "reference and reference_labels must be given together, got only "
            + ("reference" if reference is not None else "reference_labels")
        )

    if reference is not None:
        if groups is not None:
            raise ValueError("groups is only allowed for leave-one-out, not with a reference set")
        ref = _codes(reference, "reference")
        if ref.shape[1] != codes.shape[1]:
            raise ValueError(
                f"reference has {ref.shape[1]} columns; it must match codes' {codes.shape[1]}"
            )
        ref_labels = _labels(reference_labels, ref.shape[0], "reference_labels")
        if k > ref.shape[0]:
            raise ValueError(f"k={k} is larger than the reference set ({ref.shape[0]} points)")
        classes, ref_classes = np.unique(ref_labels, return_inverse=True)
        index = NearestNeighbors(n_neighbors=k).fit(ref)
        neighbours = index.kneighbors(codes, return_distance=False)
        predicted = classes[_vote(ref_classes[neighbours], classes.size)]
        return float(np.mean(predicted == labels))

    if groups is None:
        group_ids = np.arange(n)
    else:
        _, group_ids = np.unique(_labels(groups, n, "groups"), return_inverse=True)
    group_sizes = np.bincount(group_ids)
    largest = int(group_sizes.max())
    if n - largest < k:
        raise ValueError(
            f"k={k} needs at least {k} points outside each query's group (and itself); "
            f"with {n} codes and a largest group of {largest} only {n - largest} remain"
        )
    classes, classes_of = np.unique(labels, return_inverse=True)
    index = NearestNeighbors(n_neighbors=min(n, k + largest)).fit(codes)
    candidates = index.kneighbors(codes, return_distance=False)
    allowed = group_ids[candidates] != group_ids[:, None]
    # Columns of the first k allowed candidates, nearest first (a stable sort keeps the order).
    first = np.argsort(~allowed, axis=1, kind="stable")[:, :k]
    neighbours = np.take_along_axis(candidates, first, axis=1)
    predicted = _vote(classes_of[neighbours], classes.size)
    return float(np.mean(predicted == classes_of))


def dead_units(codes: ArrayLike, tol: float = 1e-6) -> np.ndarray:
    """Which latent units never vary over the data.

    A unit is dead when ``max - min <= tol`` over all codes: a ReLU unit that is always 0, a
    sigmoid unit saturated at 0 or 1, any unit stuck at a constant. It carries no information
    about the input.

    Parameters
    ----------
    codes : array_like, shape (N, D)
        Codes of a data set.
    tol : float, default 1e-6
        Largest spread still counted as constant.

    Returns
    -------
    numpy.ndarray of bool, shape (D,)
        True for dead units.
    """
    codes = _codes(codes)
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    spread = codes.max(axis=0).astype(np.float64) - codes.min(axis=0).astype(np.float64)
    return spread <= tol


def max_activation(codes: ArrayLike) -> np.ndarray:
    """The largest value each latent unit takes over the data (the notebook's bar chart).

    Parameters
    ----------
    codes : array_like, shape (N, D)
        Codes of a data set.

    Returns
    -------
    numpy.ndarray, shape (D,)
        Per-unit maximum.
    """
    return _codes(codes).max(axis=0)
