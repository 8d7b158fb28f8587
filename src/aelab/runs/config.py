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

from aelab._version import __version__
from aelab.data.spec import DataSpec
from aelab.models import FAMILIES, BaseAutoencoder, ModelConfig, model_from_config
from aelab.runs.manifest import Manifest, unchecked
from aelab.training.config import TrainConfig
from aelab.utils.files import read_json, write_json
from aelab.utils.memory import check_loadable

FORMAT_VERSION = 1  # of config.json; the folder's own format is aelab.manifest.FORMAT
CONFIG_FILE = "config.json"


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
        """A new model of the recorded family and config (freshly initialised weights); one too
        large for this machine's memory is refused before anything is allocated."""
        check_loadable(FAMILIES[self.family], self.model_config, CONFIG_FILE)
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
        path = Path(directory) / CONFIG_FILE
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike, *, legacy: bool = False) -> RunConfig:
        """Read and validate ``directory/config.json``, checked against the folder's manifest;
        a folder without one is refused unless ``legacy`` (a run of aelab 0.1, read unchecked)."""
        path = Path(directory) / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"run='{directory}' is not a run directory (no {CONFIG_FILE})")
        manifest = Manifest.read(directory)
        if manifest is not None:  # the file must be the one aelab wrote
            manifest.verified(directory, CONFIG_FILE)
        elif not legacy:
            raise unchecked(directory)
        return cls.from_dict(read_json(path), source=str(path))


__all__ = ["CONFIG_FILE", "FORMAT_VERSION", "DataSpec", "RunConfig", "current_versions"]
