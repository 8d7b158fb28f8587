"""``workshop.json``: the typed record of a workshop folder (``aelab run``), one writer and one
reader, checked like every other file of a run folder.

A workshop folder holds one run folder per model, ``metrics.json``, ``figures/``, ``report.html``
and this record::

    {"schedule": "quick" or "quick, 3 epochs",   what the report shows
     "models": ["shallow", ...],                 in training order; each a sub-folder
     "data": {... DataSpec ...},                 how to read the data again
     "settings": {"schedule": "quick", "seed": 0, "device": "auto", ...},   TrainConfig fields
     "seeds": [0, 1, 2],                         training seeds (absent: settings' seed alone)
     "model": {"latent_dim": 16, ...},           the models' config overrides (absent: none)
     "seconds": {"shallow": 8.2, ...}}            training time of each finished run

With one seed a model's run folder is ``FOLDER/<model>``; with several, ``FOLDER/<model>-seed<S>``
for each seed ``S`` (:meth:`WorkshopRecord.runs`): normal run folders, each resumable, all sharing
one split of the data (its own seed, ``data.seed``).

Workshops of aelab 0.1 called the schedule ``preset`` and had no ``settings``: they are read (for
the report), not resumed.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from aelab.data.spec import DataSpec
from aelab.runs.manifest import Manifest, unchecked
from aelab.runs.ownership import check_name
from aelab.utils.files import read_json

WORKSHOP_FILE = "workshop.json"
GROUPS_FILE = "groups.csv"  # the user's groups of images (aelab run --groups), copied verbatim


@dataclasses.dataclass
class WorkshopRecord:
    """What :data:`WORKSHOP_FILE` records (see the module's docstring).

    Attributes
    ----------
    models : list of str
        The recipes trained, in order; each one's run folder is ``FOLDER/<name>``.
    data : DataSpec or None
        The data every model trained on (None only in a record of aelab 0.1 that lacks it).
    schedule : str or None
        ``"quick"`` or ``"seed"``.
    settings : dict or None
        The :class:`~aelab.TrainConfig` fields given to every model on top of the schedule
        (``seed``, ``device``, ``precision``, ``conv_kernels``, and ``epochs`` when set); None in
        a record of aelab 0.1, which cannot be resumed.
    seconds : dict
        Training seconds of each finished run, by its folder's name.
    seeds : list of int or None
        The training seeds; None: the one of ``settings`` (or 0).
    model : dict or None
        Fields of the models' configs given on top of each recipe's (``aelab train --seeds``).
    """

    models: list[str]
    data: DataSpec | None
    schedule: str | None
    settings: dict[str, Any] | None = None
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    seeds: list[int] | None = None
    model: dict[str, Any] | None = None

    @property
    def seed_list(self) -> list[int]:
        """The training seeds, one at least."""
        return list(self.seeds) if self.seeds else [int((self.settings or {}).get("seed", 0))]

    def runs(self) -> list[tuple[str, int, str]]:
        """``(model, seed, folder name)`` of every run, models in order, then seeds."""
        seeds = self.seed_list
        return [
            (m, s, m if len(seeds) == 1 else f"{m}-seed{s}") for m in self.models for s in seeds
        ]

    @property
    def label(self) -> str | None:
        """The schedule as the report names it: ``"quick"``, ``"quick, 3 epochs"``."""
        epochs = (self.settings or {}).get("epochs")
        return self.schedule if epochs is None else f"{self.schedule}, {epochs} epochs"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schedule": self.label,
            "models": list(self.models),
            "data": None if self.data is None else self.data.to_dict(),
        }
        if self.settings is not None:
            d["settings"] = {"schedule": self.schedule, **self.settings}
        if self.seeds is not None:
            d["seeds"] = list(self.seeds)
        if self.model:
            d["model"] = dict(self.model)
        d["seconds"] = dict(self.seconds)
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = WORKSHOP_FILE) -> WorkshopRecord:
        """Validate and read a ``workshop.json`` object; errors name ``source`` and the field."""

        def bad(what: str) -> ValueError:
            return ValueError(f"{source}: {what}; it is not a workshop record aelab can read")

        if not isinstance(d, dict):
            raise bad(f"it holds a {type(d).__name__}, not an object")
        models = d.get("models")
        if not (isinstance(models, list) and models and all(isinstance(m, str) for m in models)):
            raise bad("'models' is not a list of model names")
        try:
            models = [check_name(m, "model") for m in models]
        except ValueError as e:
            raise bad(str(e)) from None
        if len(set(models)) != len(models):
            raise bad(f"'models' names a model twice ({', '.join(models)})")
        settings = d.get("settings")
        schedule = d.get("schedule", d.get("preset"))  # "preset": aelab 0.1
        if settings is not None:
            if not isinstance(settings, dict) or not isinstance(settings.get("schedule"), str):
                raise bad("'settings' is not an object with a 'schedule'")
            settings = dict(settings)
            schedule = settings.pop("schedule")
        if schedule is not None and not isinstance(schedule, str):
            raise bad(f"schedule={schedule!r} is not a name")
        seeds = d.get("seeds")
        if seeds is not None and not check_seeds(seeds, raise_error=False):
            raise bad(f"seeds={seeds!r} is not a list of distinct integers >= 0")
        model = d.get("model")
        if model is not None and not isinstance(model, dict):
            raise bad("'model' is not an object of config fields")
        record = cls(models, None, schedule, settings, {}, seeds, model)
        names = {name for _, _, name in record.runs()}
        seconds = d.get("seconds", {})
        if not isinstance(seconds, dict) or not all(
            k in names and _seconds(v) for k, v in seconds.items()
        ):
            raise bad("'seconds' does not map its runs to numbers of seconds")
        data = d.get("data")
        if data is not None and not isinstance(data, dict):
            raise bad("'data' is neither an object nor null")
        try:
            data = None if data is None else DataSpec.from_dict(data)
        except (TypeError, ValueError) as e:
            raise bad(f"'data' is not valid ({e})") from None
        record.data, record.seconds = data, {k: float(v) for k, v in seconds.items()}
        return record

    @classmethod
    def read(
        cls, folder: str | os.PathLike, manifest: Manifest | None = None, *, legacy: bool = False
    ) -> WorkshopRecord:
        """The record of the workshop in ``folder``, checked against the SHA-256 its manifest
        records; a workshop of aelab 0.1, without a manifest, only with ``legacy``."""
        folder = Path(folder)
        path = folder / WORKSHOP_FILE
        if manifest is None:
            manifest = Manifest.read(folder)
        if manifest is not None:
            path = manifest.verified(folder, WORKSHOP_FILE)
        elif not path.is_file():
            raise ValueError(f"run='{folder}' holds no {WORKSHOP_FILE} (not an aelab workshop)")
        elif not legacy:
            raise unchecked(folder)
        return cls.from_dict(read_json(path), str(path))

    def resumable(
        self, source: str, data_home: str | None = None
    ) -> tuple[DataSpec, str, dict[str, Any]]:
        """The data (read from ``data_home``: never a folder the record names), schedule and
        settings to train the rest with; an error naming ``source`` for a record of aelab 0.1,
        which has none."""
        if self.data is None or self.settings is None or self.schedule is None:
            raise ValueError(
                f"{source}: not a workshop record aelab can resume (written by aelab 0.1, it "
                "has no training settings); run the workshop again"
            )
        data = dataclasses.replace(self.data, data_home=data_home)
        return data, self.schedule, dict(self.settings)


def check_seeds(seeds: Any, *, raise_error: bool = True, name: str = "seeds") -> bool:
    """Whether ``seeds`` is a non-empty list of distinct integers >= 0 (else, with
    ``raise_error``, one line naming ``name``)."""
    ok = (
        isinstance(seeds, (list, tuple))
        and len(seeds) > 0
        and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63 for s in seeds)
        and len(set(seeds)) == len(seeds)
    )
    if not ok and raise_error:
        raise ValueError(
            f"{name}={seeds!r} is not valid; expected distinct integers >= 0, e.g. 0,1,2"
        )
    return ok


def _seconds(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def is_workshop(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a workshop: by its manifest's kind, or (aelab 0.1, no manifest)
    by its record."""
    folder = Path(folder)
    manifest = Manifest.read(folder)
    if manifest is not None:
        return manifest.kind == "workshop"
    return (folder / WORKSHOP_FILE).is_file()


__all__ = ["GROUPS_FILE", "WORKSHOP_FILE", "WorkshopRecord", "check_seeds", "is_workshop"]
