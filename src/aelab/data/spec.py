"""Where a run's images come from and how they are split: :class:`DataSpec`, recorded in a run's
``config.json`` under ``"data"``, enough to rebuild the same split (:func:`aelab.data.prepare`)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from aelab.data.datasets import DATASETS
from aelab.data.listing import CLASS_ORDERS
from aelab.data.reading import MAX_IMAGE_PIXELS
from aelab.data.splits import default_split, folder_split
from aelab.utils.choices import not_one_of
from aelab.utils.fields import from_fields


@dataclasses.dataclass
class DataSpec:
    """Where the images come from and how they are split; enough to rebuild the same split."""

    source: str = "mnist"
    data_home: str | None = None
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    skip_bad: bool = False
    mirror: bool = False
    holdout_people: int | None = None
    holdout: float | None = None
    normals: float | None = None  # with holdout_people: unseen images of training people
    seed: int = 0
    stream: bool = False  # read a folder one batch at a time instead of loading it whole
    follow_links: bool = False  # read symbolic links in a folder (skipped by default)
    max_image_pixels: int | None = MAX_IMAGE_PIXELS  # refuse larger images before decoding
    # streamed folders: "auto" (the default folder, aelab.data.cache.default_cache_dir), "off",
    # or a folder; decoded pixels kept for later epochs (results are the same: not in the split)
    cache: str = "auto"
    # a folder's classes: "natural" (s1, s2, ..., s10) or "name" (s1, s10, s2: aelab <= 0.2.1)
    class_order: str = "natural"
    # with no split given, a folder of people (aelab.data.splits.folder_split) holds out whole
    # subfolders; False: a random fraction, as aelab <= 0.2.1 did for every folder
    group_folders: bool = True

    def __post_init__(self) -> None:
        self.source = str(self.source)
        self.cache = os.fspath(self.cache) if isinstance(self.cache, os.PathLike) else self.cache
        if not isinstance(self.cache, str) or not self.cache.strip():
            raise ValueError(
                f"cache={self.cache!r} is not valid; allowed: 'auto' (the default folder), "
                "'off' or a folder path"
            )
        if self.cache != "auto" and not self.stream:
            raise ValueError(
                f"cache={self.cache!r} is not valid without stream=True: only streamed folders "
                "are cached (in memory, images are decoded once); drop it or stream the folder"
            )
        if self.image_size is not None:
            self.image_size = tuple(self.image_size)
        if not isinstance(self.stream, bool):
            raise ValueError(f"stream={self.stream!r} is not valid; expected True or False")
        path = Path(self.source).expanduser()
        if self.stream and (self.source in DATASETS or not path.is_dir()):
            if self.source in DATASETS:
                what = "a registered data set"
            else:
                what = "a file" if path.exists() else "no such folder"
            raise ValueError(
                f"stream=True is not valid for data={self.source!r} ({what}); allowed: a "
                "folder of images; drop stream=True to load other data into memory"
            )
        if self.class_order not in CLASS_ORDERS:
            raise not_one_of("class_order", self.class_order, CLASS_ORDERS)
        if not isinstance(self.group_folders, bool):
            raise ValueError(
                f"group_folders={self.group_folders!r} is not valid; expected True or False"
            )
        if self.normals is not None and not self._folder_decides():  # else once it is listed
            check_normals(self.normals, self.split_kwargs())
        if self.stream and self.skip_bad:
            raise ValueError(
                "skip_bad=True is not valid with stream=True: unreadable images are found only "
                "by reading every image; drop one of the two"
            )

    @property
    def name(self) -> str:
        """The data's name, as a report shows it: a registered set's, else the folder's or the
        file's own name, never its path (which tells of the machine it was read on)."""
        if self.source in DATASETS:
            return self.source
        return Path(self.source).expanduser().resolve().name or self.source

    def split_kwargs(self) -> dict[str, Any]:
        """The split as given, else the default of a registered set, else a random 10% (a
        folder's own default needs its listing: :meth:`split_for`)."""
        if self.holdout_people is not None:
            return {"holdout_people": self.holdout_people}
        if self.holdout is not None:
            return {"holdout": self.holdout}
        return default_split(self.source)

    def _folder_decides(self) -> bool:
        """Whether the split is the default of a folder, decided by its subfolders."""
        if self.holdout_people is not None or self.holdout is not None or not self.group_folders:
            return False
        return self.source not in DATASETS and Path(self.source).expanduser().is_dir()

    def split_for(self, data: Any) -> tuple[dict[str, Any], str | None]:
        """The split of ``data`` (this spec's images, listed or loaded), and a line for the user
        when a folder's subfolders chose it (:func:`aelab.data.splits.folder_split`)."""
        if self._folder_decides():
            found = folder_split(data)
            if found is not None:
                return found
        return self.split_kwargs(), None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size) if self.image_size else None
        if self.cache == "auto":  # the default: left out, so that older aelab reads the file
            del d["cache"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        """The inverse of :meth:`to_dict`; unknown fields are an error naming them. A record of
        aelab 0.2.1 or earlier, without ``class_order`` and ``group_folders``, reads its folder
        as it did then (classes by name, a random fraction held out), so its split is the same."""
        return from_fields(cls, {"class_order": "name", "group_folders": False, **d})


def check_normals(normals: object, split_kwargs: dict[str, Any]) -> None:
    """``normals``: a fraction in (0, 1), and only where whole people or classes are held out
    (otherwise the held-out images are already unseen normals)."""
    if isinstance(normals, bool) or not isinstance(normals, (int, float)) or not 0 < normals < 1:
        raise ValueError(f"normals={normals!r} is not valid; expected a fraction in (0, 1)")
    if "holdout_people" not in split_kwargs:
        raise ValueError(
            f"normals={normals!r} is not valid with {split_kwargs}; it needs holdout_people=K "
            "(the held-out people are then the unusual images, these the usual ones)"
        )
