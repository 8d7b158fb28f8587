"""A data spec made into the sets a run trains and is measured on: loaded (or listed, when
streamed), split so that held-out images never reach training, mirrored, with a validation share
carved out of the training people where asked, and fingerprinted so that a run can later check
it is given the same split (:class:`Split`, :func:`prepare_data`)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from aelab.data.datasets import load_dataset
from aelab.data.folders import ImageFolderDataset
from aelab.data.images import ImageSet
from aelab.data.spec import DataSpec, check_normals
from aelab.data.splits import carve_validation, mirror, split


@dataclasses.dataclass
class Split:
    """The training, held-out and (for recipes that choose their epoch) validation sets: in
    memory, or streamed folders (``DataSpec.stream``). The validation set is carved out of the
    training people (:func:`aelab.data.carve_validation`); the held-out set only measures."""

    train: ImageSet | ImageFolderDataset
    heldout: ImageSet | ImageFolderDataset
    validation: ImageSet | ImageFolderDataset | None = None
    # unseen images of the training people (DataSpec.normals): the usual images against which
    # the report asks whether the held-out people look unusual
    normals: ImageSet | ImageFolderDataset | None = None
    # how the held-out set was chosen ({"holdout_people": K} or {"holdout": F}; None: the spec's
    # split_kwargs): a folder of people decides it from its subfolders (DataSpec.split_for)
    how: dict[str, Any] | None = None
    # how many images the data set held as loaded, before the split (each part's origins() index
    # them; a folder's parts also name them, .files): what a groups file may name
    n_loaded: int | None = None

    def split_kwargs(self, spec: DataSpec) -> dict[str, Any]:
        """How the held-out set was chosen."""
        return spec.split_kwargs() if self.how is None else self.how

    def with_validation(self, fraction: float, spec: DataSpec) -> Split:
        """This split with ``fraction`` of its training people (when the held-out set is whole
        people) or images carved out as a validation set; itself when ``fraction`` is 0 or it
        has one already."""
        if not fraction or self.validation is not None:
            return self
        train, validation = carve_validation(
            self.train,
            fraction,
            by_people="holdout_people" in self.split_kwargs(spec),
            mirrored=spec.mirror,
            seed=spec.seed,
        )
        return dataclasses.replace(self, train=train, validation=validation)

    @functools.cached_property
    def fingerprint(self) -> dict[str, str]:
        """A SHA-256 of each part (the pixels and labels in memory; the files' names, sizes and
        labels when streamed), computed once: every run trained on this split records it, and
        resuming and the report compare it with the data they load."""
        parts = {"train": fingerprint(self.train), "heldout": fingerprint(self.heldout)}
        if self.validation is not None:
            parts["validation"] = fingerprint(self.validation)
        if self.normals is not None:
            parts["normals"] = fingerprint(self.normals)
        return parts

    def describe(self) -> dict[str, Any]:
        """What ``config.json`` records of the split, its fingerprint included."""
        out = {
            "n_train": len(self.train),
            "n_heldout": len(self.heldout),
            "image_shape": list(self.train.image_shape),
            "fingerprint": self.fingerprint,
        }
        if self.validation is not None:
            out["n_validation"] = len(self.validation)
        if self.normals is not None:
            out["n_normals"] = len(self.normals)
        return out


def fingerprint(part: ImageSet | ImageFolderDataset) -> str:
    """A SHA-256 of one part of a split, in its order."""
    digest = hashlib.sha256()
    if isinstance(part, ImageSet):
        digest.update(np.ascontiguousarray(part.images, dtype=np.float32).tobytes())
    else:
        for name, size, flipped in part.listing():
            digest.update(f"{name}\0{size}\0{int(flipped)}\n".encode("utf-8", "surrogateescape"))
    if part.labels is not None:
        digest.update(np.asarray(part.labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def prepare_data(spec: DataSpec, validation: float = 0.0) -> Split:
    """Load, split (held-out images never reach training), then add mirrors to both parts;
    with ``validation`` > 0, carve that share of the training people or images out for choosing
    the epoch (:meth:`Split.with_validation`).

    With ``spec.stream`` nothing is loaded: the folder is listed and split by its labels into
    :class:`~aelab.data.ImageFolderDataset` parts that read images as they are used.
    """
    reading = {
        "image_size": spec.image_size,
        "channels": spec.channels,
        "follow_links": spec.follow_links,
        "max_image_pixels": spec.max_image_pixels,
        "class_order": spec.class_order,
    }
    if spec.stream:
        cache = {"auto": True, "off": None}.get(spec.cache, spec.cache)
        data = ImageFolderDataset(Path(spec.source).expanduser(), cache=cache, **reading)
    else:
        data = load_dataset(
            spec.source, data_home=spec.data_home, skip_bad=spec.skip_bad, **reading
        )
    how, note = spec.split_for(data)
    if note is not None:  # said before training, with the other notes on the data
        data.notes.append(note)
    if spec.normals is not None:
        check_normals(spec.normals, how)
    train, heldout = split(data, seed=spec.seed, **how)
    normals = None
    if spec.normals:  # a stratified share of every training person's images, never trained on
        train, normals = split(train, holdout=spec.normals, seed=spec.seed)
    if spec.mirror:
        train, heldout = mirror(train), (mirror(heldout) if len(heldout) else heldout)
        normals = None if normals is None else mirror(normals)
    split_ = Split(train, heldout, normals=normals, how=how, n_loaded=len(data))
    return split_.with_validation(validation, spec)
