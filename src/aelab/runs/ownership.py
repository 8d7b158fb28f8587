"""What aelab owns on disk, and how it claims it: folder names that stay inside, new folders
claimed by creating them, the lock, the files aelab wrote (those its manifest records, with the
SHA-256 they still have), leftovers of interrupted writes, putting one folder in another's place
and discarding the one it replaced without losing anything aelab did not write.

:mod:`aelab.rundir` builds its :class:`~aelab.rundir.RunDir` on these.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aelab.runs.manifest import MANIFEST, Manifest
from aelab.utils.files import TMP_MARK, read_json, sha256_file

LOCK = ".lock"
CONFIG = "config.json"
NEW_MARK, OLD_MARK = ".aelab-new-", ".aelab-old-"  # hidden siblings of a folder being replaced
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class RunInUse(ValueError):
    """Another aelab process holds the folder's lock."""


def check_name(name: str, what: str = "name") -> str:
    """``name`` if it is one plain folder name (no separators, no ``..``), else an error."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"{what}={name!r} is not valid; expected a plain name of letters, digits, '_', '.' "
            "and '-' (no path separators)"
        )
    return name


def unique_path(parent: str | os.PathLike, stem: str) -> Path:
    """A new folder ``parent/stem``, or ``stem-2``, ``stem-3``...: claimed by creating it, so two
    processes started in the same second never get the same one."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = parent / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise ValueError(f"out: no free name {stem}-N left in '{parent}'")


def unique_name(parent: Path, stem: str) -> Path:
    """``parent/stem``, or ``stem-2``, ``stem-3``...: the first name not taken (not claimed)."""
    for n in range(1, 10_000):
        path = parent / (stem if n == 1 else f"{stem}-{n}")
        if not os.path.lexists(path):
            return path
    raise ValueError(f"no free name {stem}-N left in '{parent}'")


def check_writable(out: Path) -> None:
    """Raise when ``out`` (or the nearest existing folder above it) cannot take new files."""
    parent = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    try:  # a real probe: permission bits lie for root and read-only file systems
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise ValueError(f"out='{out}' is not writable ({parent}: {e.strerror or e})") from None


def lock_folder(folder: Path, name: str) -> int:
    """An exclusive lock on ``folder``: the open file descriptor holding it."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES):
            raise RunInUse(
                f"{name}='{folder}' is in use by another aelab process; wait for it to finish "
                "or choose another folder"
            ) from None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def is_locked(folder: Path) -> bool:
    try:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def replace_folder(new: Path, target: Path) -> Path:
    """Put folder ``new`` in the place of folder ``target``; returns where the old one now is.

    Atomic where the system can swap two names (Linux ``renameat2(RENAME_EXCHANGE)``); else two
    renames, the old folder parked beside as ``.NAME.aelab-old-*`` in between, which
    :func:`repair_siblings` puts back if the process stops there.
    """
    if sys.platform.startswith("linux"):
        renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
        if renameat2 is not None:
            at_fdcwd, rename_exchange = -100, 2
            src, dst = os.fsencode(new), os.fsencode(target)
            if renameat2(at_fdcwd, src, at_fdcwd, dst, rename_exchange) == 0:
                return new
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise OSError(err, os.strerror(err), str(target))
    parked = target.with_name(f".{target.name}{OLD_MARK}{uuid.uuid4().hex[:8]}")
    os.rename(target, parked)
    os.rename(new, target)
    return parked


def repair_siblings(target: Path) -> None:
    """Remove what an interrupted replacement of ``target`` left beside it, and put the old folder
    back if the replacement stopped between its two renames."""
    parent = target.parent
    if not parent.is_dir():
        return
    for sibling in parent.glob(f".{target.name}{OLD_MARK}*"):
        if not target.exists():
            os.rename(sibling, target)  # the old run was parked: it is still the run
        elif not is_locked(sibling):
            discard(sibling)
    for sibling in parent.glob(f".{target.name}{NEW_MARK}*"):  # aelab's own, made to be hidden
        if not is_locked(sibling):
            shutil.rmtree(sibling, ignore_errors=True)


def remove_leftovers(folder: Path, manifest: Manifest | None) -> None:
    """Temporary files and checkpoints that no manifest points to (an interrupted write)."""
    for entry in folder.iterdir():
        stale = TMP_MARK in entry.name or (
            entry.name.startswith("checkpoint-")
            and entry.is_dir()
            and not entry.is_symlink()
            and (manifest is None or entry.name != manifest.checkpoint)
        )
        if stale:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def foreign_entries(folder: Path, manifest: Manifest | None = None) -> list[str]:
    """What ``folder`` holds that aelab did not write, or that changed since it wrote it
    (relative names): aelab owns a file only when its manifest lists it with the SHA-256 it has
    now. A folder without a manifest is all foreign (a file's name proves nothing)."""
    if manifest is None:
        manifest = Manifest.read(folder)
    if manifest is None:
        return sorted(e.name for e in folder.iterdir() if e.name != LOCK)
    allowed_dirs = {Path(f).parts[0] for f in manifest.files if len(Path(f).parts) > 1}
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        name = entry.name
        if name in (MANIFEST, LOCK) or TMP_MARK in name:
            continue
        if entry.is_symlink():
            found.append(name)
        elif name in manifest.runs and entry.is_dir():
            found += [f"{name}/{n}" for n in foreign_entries(entry)]
        elif entry.is_dir() and (name in allowed_dirs or name.startswith("checkpoint-")):
            for path in sorted(entry.rglob("*")):
                rel = f"{name}/{path.relative_to(entry).as_posix()}"
                if path.is_symlink() or not (path.is_dir() or _recorded(path, rel, manifest)):
                    found.append(rel)
        elif not _recorded(entry, name, manifest):
            found.append(name)
    return found


def _recorded(path: Path, name: str, manifest: Manifest) -> bool:
    """Whether ``path`` is the regular file the manifest records as ``name``, byte for byte."""
    digest = manifest.files.get(name)
    return digest is not None and path.is_file() and sha256_file(path) == digest


def discard(folder: Path) -> Path | None:
    """Remove a folder aelab put aside (an earlier run replaced, an unfinished replacement):
    all of it when aelab wrote everything in it; otherwise only what its manifest records by
    digest, the rest kept in a visible folder beside (returned) so that nothing of anyone
    else's is lost."""
    foreign = foreign_entries(folder)
    if not foreign:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    manifest = Manifest.read(folder)
    mine = set() if manifest is None else set(manifest.files)
    for name in sorted(mine, key=lambda n: -len(Path(n).parts)):
        path = folder / name
        if name not in foreign and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
    for name in (MANIFEST, LOCK):
        if manifest is not None:
            (folder / name).unlink(missing_ok=True)
    stem = folder.name.lstrip(".").split(OLD_MARK)[0].split(NEW_MARK)[0]
    kept = unique_name(folder.parent, f"{stem}.kept-{time.strftime('%Y%m%d-%H%M%S')}")
    os.rename(folder, kept)
    return kept


def adopt_legacy_workshop(folder: Path) -> Manifest:
    """A manifest for a workshop of aelab 0.1: the files it wrote, recognised by name."""
    record = read_json(folder / "workshop.json")
    runs = record.get("models") if isinstance(record, dict) else None
    if not isinstance(runs, list) or not all(isinstance(r, str) for r in runs):
        raise ValueError(f"{folder / 'workshop.json'}: 'models' is not a list of names")
    files = {}
    for name in ("workshop.json", "metrics.json", "report.html"):
        if (folder / name).is_file() and not (folder / name).is_symlink():
            files[name] = sha256_file(folder / name)
    figures = folder / "figures"
    if figures.is_dir() and not figures.is_symlink():
        for png in figures.glob("*.png"):
            if png.is_file() and not png.is_symlink():
                files[f"figures/{png.name}"] = sha256_file(png)
    return Manifest("workshop", files=files, runs=[check_name(r, "model") for r in runs])


def _listing(names: list[str], at_most: int = 4) -> str:
    return ", ".join(names[:at_most]) + (", ..." if len(names) > at_most else "")


def refuse_held(target: Path, name: str, kind: str) -> None:
    """A folder that holds anything is not written without ``overwrite``."""
    held = [e.name for e in target.iterdir() if e.name != LOCK]
    if not held:
        return
    manifest = Manifest.read(target)
    if is_locked(target):  # being written now: not unfinished, in use
        raise RunInUse(
            f"{name}='{target}' is in use by another aelab process; wait for it to finish or "
            "choose another folder"
        )
    if manifest is not None and manifest.kind == kind and unfinished(target, manifest):
        # the same command again after an interruption: continuing it keeps what was done
        what = "workshop" if kind == "workshop" else "run"
        if kind == "train" and manifest.checkpoint is None:
            what = "run (interrupted with no checkpoint yet)"
        raise ValueError(
            f"{name}='{target}' holds an unfinished {what}; pass resume=True to continue it, "
            "overwrite=True to start again from nothing, or choose another folder"
        )
    also = "resume=True to continue it, " if kind == "train" else ""
    raise ValueError(
        f"{name}='{target}' already holds files; pass overwrite=True to replace an "
        f"earlier run, {also}or choose another folder"
    )


def unfinished(target: Path, manifest: Manifest) -> bool:
    """Whether the run or workshop in ``target`` (its ``manifest``) stopped before its end: a
    run not published; a workshop with a model not trained to its end, or no final report (none,
    or the partial page written while it trained)."""
    if manifest.kind != "workshop":
        return not manifest.complete
    try:
        for name in manifest.runs:
            run = Manifest.read(target / name)
            if run is None or not run.complete:
                return True
        metrics = target / "metrics.json"
        return not metrics.is_file() or read_json(metrics).get("partial") is True
    except (ValueError, OSError, AttributeError):  # damaged: --resume says what it finds
        return True


def refuse_foreign(target: Path, name: str) -> None:
    """Only a folder that holds nothing but an earlier aelab run may be replaced."""
    held = sorted(e.name for e in target.iterdir() if e.name != LOCK)
    if not held:
        return
    manifest = Manifest.read(target)
    foreign = foreign_entries(target, manifest)
    if manifest is None and foreign == held:
        raise ValueError(
            f"{name}='{target}' is not an aelab run (no {MANIFEST}); refusing to delete it even "
            "with overwrite=True"
        )
    if foreign:
        raise ValueError(
            f"{name}='{target}' holds files aelab did not write ({_listing(foreign)}); refusing "
            "to replace it even with overwrite=True: move them, or choose another folder"
        )
