"""Checks before a run directory is written: never replace what aelab did not write, never an
earlier run unless asked, and nothing that cannot be written.

Messages name the library's parameters (``overwrite=True``); the command line adds its flags.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .runconfig import CONFIG_FILE


def check_out_dir(out: str | os.PathLike, *, resume: bool, overwrite: bool) -> Path:
    """Refuse to overwrite an earlier run unless asked; refuse what cannot be written."""
    out = Path(out)
    if resume:
        if out.exists() and not out.is_dir():
            raise ValueError(f"out='{out}' is a file; expected a folder for the run")
        if not (out / CONFIG_FILE).is_file():
            raise ValueError(f"out='{out}' holds no run to resume (no {CONFIG_FILE})")
        if overwrite:
            raise ValueError("resume and overwrite exclude each other; pass one")
        return out
    check_replaceable(out, overwrite=overwrite, also="resume=True to continue it, ")
    check_writable(out)
    return out


def check_replaceable(
    out: Path,
    *,
    overwrite: bool,
    marker: str = CONFIG_FILE,
    name: str = "out",
    also: str = "",
) -> None:
    """Refuse a folder that holds files unless ``overwrite``, and never one without ``marker``.

    An earlier run is only ever replaced when asked; a folder that is not an aelab run (it has
    no ``marker`` file) is never deleted, even when asked.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"{name}='{out}' is a file; expected a folder for the run")
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not overwrite:
        raise ValueError(
            f"{name}='{out}' already holds files; pass overwrite=True to replace an earlier "
            f"run, {also}or choose another folder"
        )
    if not (out / marker).is_file():
        raise ValueError(
            f"{name}='{out}' is not an aelab run (no {marker}); refusing to delete it even "
            "with overwrite=True"
        )


def check_writable(out: Path) -> None:
    """Raise when ``out`` (or the nearest existing folder above it) cannot take new files."""
    parent = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    try:  # a real probe: permission bits lie for root and read-only file systems
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise ValueError(f"out='{out}' is not writable ({parent}: {e.strerror or e})") from None
