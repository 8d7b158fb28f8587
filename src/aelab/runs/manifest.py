"""``aelab-run.json``: the mark that aelab wrote a folder, and the list of what it wrote there.

Only aelab writes this file, always last and atomically, so it describes a consistent state of
the folder however the process that wrote it ended::

    {"aelab_run": 2,                 the format; its presence is the mark
     "kind": "train",                "train", "estimator" or "workshop"
     "aelab": "0.2.0",               the version that wrote it
     "epoch": 5,                     epochs in the current checkpoint (training runs)
     "checkpoint": "checkpoint-000005" or null,
     "complete": true,               training finished and the final files are published
     "runs": ["deep", ...],          a workshop's sub-runs, each a folder with its own mark
     "files": {"config.json": "<sha256>", "checkpoint-000005/model.safetensors": "<sha256>", ...}}

Readers verify every file they use against its SHA-256 here, so a truncated or bit-flipped file is
refused with one line naming it. A folder without the mark is not aelab's, unless it is a run of
aelab 0.1 (its files only, recognised by name; see :func:`aelab.runs.ownership.foreign_entries`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from aelab._version import __version__
from aelab.utils.files import sha256_file, write_bytes

MANIFEST = "aelab-run.json"
FORMAT = 2
KINDS = ("train", "estimator", "workshop")


@dataclasses.dataclass
class Manifest:
    """What :data:`MANIFEST` records (see the module's docstring)."""

    kind: str
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    epoch: int = 0
    checkpoint: str | None = None
    complete: bool = False
    runs: list[str] = dataclasses.field(default_factory=list)
    aelab: str = __version__
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        d = {"aelab_run": self.format, **dataclasses.asdict(self)}
        del d["format"]
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str) -> Manifest:
        def bad(what: str) -> ValueError:
            return ValueError(f"{source}: {what}; it is not a manifest aelab can read")

        if not isinstance(d, dict) or "aelab_run" not in d:
            raise bad("it has no 'aelab_run' format number")
        if d["aelab_run"] != FORMAT:
            raise bad(f"format {d['aelab_run']!r}, this aelab reads format {FORMAT}")
        if d.get("kind") not in KINDS:
            raise bad(f"kind={d.get('kind')!r} (allowed: {', '.join(KINDS)})")
        files = d.get("files", {})
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and _inside(k) and isinstance(v, str) for k, v in files.items()
        ):
            raise bad("'files' must map relative paths inside the folder to SHA-256 digests")
        runs = d.get("runs", [])
        if not isinstance(runs, list) or not all(isinstance(r, str) and _inside(r) for r in runs):
            raise bad("'runs' must list folders inside it")
        epoch, checkpoint = d.get("epoch", 0), d.get("checkpoint")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise bad(f"epoch={epoch!r} is not a count of epochs")
        if checkpoint is not None and not (isinstance(checkpoint, str) and _inside(checkpoint)):
            raise bad(f"checkpoint={checkpoint!r} is not a folder inside it")
        return cls(
            kind=d["kind"],
            files=dict(files),
            epoch=epoch,
            checkpoint=checkpoint,
            complete=bool(d.get("complete", False)),
            runs=list(runs),
            aelab=str(d.get("aelab", "")),
        )

    @classmethod
    def read(cls, directory: str | os.PathLike) -> Manifest | None:
        """The manifest of ``directory``; None when it has none (not an aelab 0.2 folder)."""
        path = Path(directory) / MANIFEST
        if not path.is_file() or path.is_symlink():
            return None
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(d, str(path))

    def write(self, directory: str | os.PathLike) -> None:
        """Replace ``directory``'s manifest atomically (written last: it commits the rest)."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        write_bytes(Path(directory) / MANIFEST, text.encode("utf-8"))

    def verified(self, directory: str | os.PathLike, name: str) -> Path:
        """The path of file ``name`` in ``directory`` after checking it is the file recorded."""
        path = Path(directory) / name
        expected = self.files.get(name)
        if expected is None:
            raise ValueError(f"{path}: not recorded in {MANIFEST}; the folder is incomplete")
        if path.is_symlink() or not path.is_file():
            raise ValueError(f"{path}: missing (recorded in {MANIFEST}); the run is incomplete")
        if sha256_file(path) != expected:
            raise ValueError(
                f"{path}: its SHA-256 differs from the one recorded in {MANIFEST}: the file is "
                "damaged or was changed; restore it or train the run again"
            )
        return path


def unchecked(folder: str | os.PathLike) -> ValueError:
    """The error for a folder that holds a run but no manifest to check its files against."""
    return ValueError(
        f"run='{folder}' has no {MANIFEST}, the record every file of a run is checked against: "
        "it was written by aelab 0.1, or the record was removed; its files cannot be trusted. "
        "To read a run of aelab 0.1 unchecked, pass legacy=True"
    )


def _inside(name: str) -> bool:
    """Whether ``name`` is a relative path that stays inside its folder."""
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts and "" not in parts
