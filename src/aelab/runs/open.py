"""One way to open what aelab wrote: a run (``aelab train``, ``Autoencoder.save``) or a workshop
(``aelab run``), its models loaded and every file checked against the folder's manifest, and on
request its data read again and checked against every model's record of its split.

The report, ``aelab evaluate``, ``aelab explore``, ``aelab export``, ``aelab score`` and the
Jupyter display all take what :func:`open_runs` returns; none of them reads ``workshop.json`` or
rebuilds a split itself.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from aelab.data.groups import ImageGroups, read_split_groups
from aelab.data.prepare import Split
from aelab.runs.manifest import Manifest
from aelab.runs.run import Run, check_split, has_weights, load_run
from aelab.runs.workshop import GROUPS_FILE, WorkshopRecord, is_workshop


@dataclasses.dataclass
class Opened:
    """A run or a workshop, opened.

    Attributes
    ----------
    path : pathlib.Path
        The folder.
    runs : dict of str to Run
        Its trained runs by folder name (one for a run; a workshop's in its order, those not
        trained yet left out): a model's name, or ``MODEL-seedS`` in a workshop of several
        seeds. :attr:`groups` gathers them by model.
    workshop : WorkshopRecord or None
        The workshop's record; None for a single run.
    split : Split or None
        The data every model was trained and measured on, checked against each model's record
        of it; None unless :func:`open_runs` was asked for it.
    image_groups : ImageGroups or None
        A workshop's groups of images (``aelab run --groups``: its ``groups.csv``), read against
        :attr:`split`; None without the file or the split.
    """

    path: Path
    runs: dict[str, Run]
    workshop: WorkshopRecord | None = None
    split: Split | None = None
    image_groups: ImageGroups | None = None

    @property
    def missing(self) -> list[str]:
        """A workshop's runs that have no trained weights yet."""
        if self.workshop is None:
            return []
        return [name for _, _, name in self.workshop.runs() if name not in self.runs]

    @property
    def groups(self) -> dict[str, dict[int, Run]]:
        """The trained runs by model, then by training seed (a model none of whose seeds is
        trained is left out)."""
        if self.workshop is None:
            return {r.name: {r.config.train.seed: r} for r in self.runs.values()}
        groups: dict[str, dict[int, Run]] = {}
        for model, seed, name in self.workshop.runs():
            if name in self.runs:
                groups.setdefault(model, {})[seed] = self.runs[name]
        return groups

    def in_memory(self, what: str) -> Split:
        """The split with both parts in memory; an error naming ``what`` needs them for a run
        that streams its images."""
        split = self.split
        if split is None:
            raise ValueError(f"{what} needs the run's data: open it with data=True")
        for part in (split.train, split.heldout):
            if not hasattr(part, "images"):
                raise ValueError(
                    f"run='{self.path}' streams its images; {what} reads them into memory: "
                    "train a run without stream=True, or load the folder with "
                    "aelab.data.load_image_folder"
                )
        return split


def open_runs(
    path: str | os.PathLike,
    *,
    device: str = "cpu",
    data: bool = False,
    data_home: str | os.PathLike | None = None,
    split: Split | None = None,
    legacy: bool = False,
) -> Opened:
    """Open the run or workshop in ``path``.

    Parameters
    ----------
    path : str or path-like
    device : str, default="cpu"
        Where the models go.
    data : bool, default=False
        Also read the data again (from ``data_home``, never from a folder the run's files name),
        as the models shared it: the training people and images, validation share included.
    data_home : str or path-like, optional
        Where named data sets are (:func:`aelab.data.get_data_home`).
    split : Split, optional
        The data, already at hand: checked instead of read again.
    legacy : bool, default=False
        Read a run or workshop of aelab 0.1, which has no manifest, unchecked (its split is then
        not checked either). Without it such a folder is refused, as is any folder whose
        manifest is missing.

    Raises
    ------
    ValueError
        For a folder that holds no run, a file that differs from its manifest's record, a
        workshop with no trained model, or data that is not the data the models trained on.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"run='{folder}' is not a directory")
    record = None
    if is_workshop(folder):
        record = WorkshopRecord.read(folder, legacy=legacy)
        runs = _workshop_runs(folder, record, device, legacy)
    else:
        run = load_run(folder, device, legacy=legacy)
        runs = {run.name: run}
    opened = Opened(folder, runs, record)
    if data or split is not None:
        if split is None:
            first = next(iter(runs.values()))
            split = first.data(None if data_home is None else str(data_home), carve=False)
        for name, run in runs.items():
            check_split(run.config, split, run.path or name, legacy=run.legacy)
        opened.split = split
        manifest = Manifest.read(folder) if record is not None else None
        if manifest is not None and GROUPS_FILE in manifest.files:
            opened.image_groups = read_split_groups(manifest.verified(folder, GROUPS_FILE), split)
    return opened


def _workshop_runs(
    folder: Path, record: WorkshopRecord, device: str, legacy: bool
) -> dict[str, Run]:
    """The trained models of a workshop, in its order; a model folder that is a symbolic link is
    refused."""
    runs = {}
    for _, _, name in record.runs():
        sub = folder / name
        if sub.is_symlink():
            raise ValueError(f"'{sub}' is a symbolic link; a workshop's models are its own folders")
        if (sub / "config.json").is_file() and has_weights(sub):
            runs[name] = load_run(sub, device, legacy=legacy)
    if not runs:
        raise ValueError(f"run='{folder}' holds no trained model yet")
    return runs


__all__ = ["Opened", "open_runs"]
