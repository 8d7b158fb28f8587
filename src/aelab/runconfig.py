"""The run-directory contract: one typed description of a run, one writer and one reader.

Every run directory, whether ``aelab train``, ``aelab run`` (one per model) or
``Autoencoder.save`` wrote it, holds a ``config.json`` that :meth:`RunConfig.save` wrote and that
every reader (``load_run``, ``--resume``, ``Autoencoder.load``, the report) opens with
:meth:`RunConfig.load`::

    {"format": 1,
     "model": {"name": recipe, "family": family, "config": {... the family's config ...}},
     "data": {... DataSpec ...} or null (fitted on in-memory arrays),
     "split": {"n_train", "n_heldout", "image_shape"},
     "train": {... TrainConfig ...},
     "versions": {"aelab", "torch", "numpy", "scikit-learn", "python"},
     "estimator": {...} (only Autoencoder.save: its parameters, input shape and scaling)}

Reading validates every part and names the file and the field on error. Nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path
from typing import Any

from ._fields import from_fields
from ._version import __version__
from .data import DATASETS, MAX_IMAGE_PIXELS, default_split
from .models import FAMILIES, BaseAutoencoder, ModelConfig, model_from_config
from .train import TrainConfig

FORMAT_VERSION = 1  # of config.json; the folder's own format is aelab.manifest.FORMAT
CONFIG_FILE = "config.json"


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
                "folder of images; set stream=False to load other data into memory"
            )
        if self.normals is not None:
            check_normals(self.normals, self.split_kwargs())
        if self.stream and self.skip_bad:
            raise ValueError(
                "skip_bad=True is not valid with stream=True: unreadable images are found only "
                "by reading every image; drop one of the two"
            )

    def split_kwargs(self) -> dict[str, Any]:
        if self.holdout_people is not None:
            return {"holdout_people": self.holdout_people}
        if self.holdout is not None:
            return {"holdout": self.holdout}
        return default_split(self.source)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size) if self.image_size else None
        if self.cache == "auto":  # the default: left out, so that older aelab reads the file
            del d["cache"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        """The inverse of :meth:`to_dict`; unknown fields are an error naming them."""
        return from_fields(cls, d)


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


def current_versions() -> dict[str, str]:
    """The versions of what a run was made with."""
    import numpy
    import sklearn
    import torch

    return {
        "aelab": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


@dataclasses.dataclass
class RunConfig:
    """What a run directory's ``config.json`` records (see the module's docstring).

    Attributes
    ----------
    model : str
        The recipe's name (``"deep"``): what ``aelab train`` and ``Autoencoder(model=...)`` took.
    family : str
        The model family (a key of :data:`aelab.models.FAMILIES`).
    model_config : ModelConfig
        The family's config, input shape included.
    train : TrainConfig
    data : DataSpec or None
        None for a model fitted on in-memory arrays (``aelab.Autoencoder``).
    split : dict
        ``{"n_train", "n_heldout", "image_shape"}``.
    estimator : dict or None
        ``Autoencoder.save``'s section: its parameters, input shape and fitted scaling.
    """

    model: str
    family: str
    model_config: ModelConfig
    train: TrainConfig
    data: DataSpec | None = None
    split: dict[str, Any] = dataclasses.field(default_factory=dict)
    estimator: dict[str, Any] | None = None
    versions: dict[str, str] = dataclasses.field(default_factory=current_versions)
    format: int = FORMAT_VERSION

    @classmethod
    def of(cls, name: str, model: BaseAutoencoder, train: TrainConfig, **fields: Any) -> RunConfig:
        """The config of a run of recipe ``name`` that trains ``model`` with ``train``."""
        return cls(name, model.family, model.config, train, **fields)

    def build_model(self) -> BaseAutoencoder:
        """A new model of the recorded family and config (freshly initialised weights)."""
        return model_from_config(self.family, self.model_config)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "format": self.format,
            "model": {
                "name": self.model,
                "family": self.family,
                "config": self.model_config.to_dict(),
            },
            "data": None if self.data is None else self.data.to_dict(),
            "split": dict(self.split),
            "train": self.train.to_dict(),
            "versions": dict(self.versions),
        }
        if self.estimator is not None:
            d["estimator"] = self.estimator
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = CONFIG_FILE) -> RunConfig:
        """Validate and read a ``config.json`` object; errors name ``source`` and the field."""

        def bad(what: str) -> ValueError:
            return ValueError(f"{source}: {what}; it is not a run configuration aelab can read")

        if not isinstance(d, dict):
            raise bad(f"holds a {type(d).__name__}, not an object")
        fmt = d.get("format")
        if fmt != FORMAT_VERSION:
            raise bad(f"format={fmt!r}, this aelab reads format {FORMAT_VERSION}")
        model = d.get("model")
        if not isinstance(model, dict) or not {"name", "family", "config"} <= set(model):
            raise bad("'model' needs 'name', 'family' and 'config'")
        family = model["family"]
        if not isinstance(model["name"], str) or not isinstance(family, str):
            raise bad("'model.name' and 'model.family' must be names")
        if family not in FAMILIES:
            raise bad(f"family={family!r} is not known (allowed: {', '.join(FAMILIES)})")
        parts: dict[str, Any] = {}
        try:
            if not isinstance(model["config"], dict):
                raise ValueError("'model.config' is not an object")
            parts["model_config"] = FAMILIES[family].config_class.from_dict(model["config"])
            for key in ("train", "split", "versions"):
                if not isinstance(d.get(key, {}), dict):
                    raise ValueError(f"'{key}' is not an object")
            parts["train"] = TrainConfig.from_dict(d.get("train", {}))
            data = d.get("data")
            if data is not None and not isinstance(data, dict):
                raise ValueError("'data' is neither an object nor null")
            parts["data"] = None if data is None else DataSpec.from_dict(data)
            estimator = d.get("estimator")
            if estimator is not None and not isinstance(estimator, dict):
                raise ValueError("'estimator' is not an object")
        except (TypeError, ValueError) as e:
            raise bad(str(e)) from None
        return cls(
            model=str(model["name"]),
            family=family,
            split=dict(d.get("split", {})),
            estimator=estimator,
            versions=dict(d.get("versions", {})),
            format=fmt,
            **parts,
        )

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``directory/config.json`` atomically; returns its path."""
        from .checkpoint import write_json

        path = Path(directory) / CONFIG_FILE
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> RunConfig:
        """Read and validate ``directory/config.json``."""
        from .checkpoint import read_json
        from .manifest import Manifest

        path = Path(directory) / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"run='{directory}' is not a run directory (no {CONFIG_FILE})")
        manifest = Manifest.read(directory)
        if manifest is not None:  # aelab 0.2 and later: the file must be the one it wrote
            manifest.verified(directory, CONFIG_FILE)
        return cls.from_dict(read_json(path), source=str(path))


__all__ = ["CONFIG_FILE", "FORMAT_VERSION", "DataSpec", "RunConfig", "current_versions"]
