"""Writing a run directory so that no run is ever lost or half-written.

* **One writer at a time.** :class:`RunDir` holds an exclusive lock (``flock`` on ``.lock`` in
  the folder) while it writes; a second aelab process aiming at the same folder is refused.
* **Nothing of anyone else's is deleted.** A folder is replaced only when aelab wrote all of it:
  its mark (:mod:`aelab.manifest`) lists every file it holds. A folder with files aelab did not
  write is refused, even with ``overwrite=True``.
* **An earlier run survives until its replacement has succeeded.** With ``overwrite=True`` the new
  run is written into a hidden sibling folder and exchanged with the old one at the end in one
  atomic step (``renameat2(RENAME_EXCHANGE)`` on Linux; two renames elsewhere, repaired on the
  next start if interrupted between them).
* **A checkpoint is one unit.** Its files go into a temporary folder, renamed to
  ``checkpoint-NNNNNN`` once whole, and only then does the manifest, replaced atomically, point to
  it; a kill at any moment leaves the previous checkpoint in force. Leftovers of an interrupted
  write are removed the next time the folder is opened.

Messages name the library's parameters (``overwrite=True``); the command line adds its flags.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from .checkpoint import (
    STATE_FILES,
    TMP_MARK,
    fsync_dir,
    load_state,
    read_json,
    save_state,
    write_bytes,
)
from .manifest import MANIFEST, Manifest, sha256_file

LOCK = ".lock"
CONFIG = "config.json"
# What aelab 0.1 wrote into a run folder, which had no manifest yet.
LEGACY_FILES = {CONFIG, *STATE_FILES}
_NEW, _OLD = ".aelab-new-", ".aelab-old-"  # hidden siblings of a folder being replaced
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class RunInUse(ValueError):
    """Another aelab process holds the folder's lock."""


class CheckpointError(OSError):
    """A checkpoint could not be written; the previous one is still in force."""


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


def check_writable(out: Path) -> None:
    """Raise when ``out`` (or the nearest existing folder above it) cannot take new files."""
    parent = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    try:  # a real probe: permission bits lie for root and read-only file systems
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise ValueError(f"out='{out}' is not writable ({parent}: {e.strerror or e})") from None


def _lock(folder: Path, name: str) -> int:
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


def _is_locked(folder: Path) -> bool:
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


def _replace(new: Path, target: Path) -> Path:
    """Put folder ``new`` in the place of folder ``target``; returns where the old one now is.

    Atomic where the system can swap two names (Linux ``renameat2(RENAME_EXCHANGE)``); else two
    renames, the old folder parked beside as ``.NAME.aelab-old-*`` in between, which
    :func:`_repair_siblings` puts back if the process stops there.
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
    parked = target.with_name(f".{target.name}{_OLD}{uuid.uuid4().hex[:8]}")
    os.rename(target, parked)
    os.rename(new, target)
    return parked


def _repair_siblings(target: Path) -> None:
    """Remove what an interrupted replacement of ``target`` left beside it, and put the old folder
    back if the replacement stopped between its two renames."""
    parent = target.parent
    if not parent.is_dir():
        return
    for sibling in parent.glob(f".{target.name}{_OLD}*"):
        if not target.exists():
            os.rename(sibling, target)  # the old run was parked: it is still the run
        elif not _is_locked(sibling):
            shutil.rmtree(sibling, ignore_errors=True)
    for sibling in parent.glob(f".{target.name}{_NEW}*"):
        if not _is_locked(sibling):
            shutil.rmtree(sibling, ignore_errors=True)


def _remove_leftovers(folder: Path, manifest: Manifest | None) -> None:
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
    """What ``folder`` holds that aelab did not write (relative names), by its manifest; for a
    folder without one, by the names aelab 0.1 wrote (and only if its config.json is aelab's)."""
    if manifest is None:
        manifest = Manifest.read(folder)
    if manifest is None:
        from .runconfig import RunConfig

        names = {e.name for e in folder.iterdir()} - {LOCK}
        try:
            RunConfig.load(folder)
        except (ValueError, FileNotFoundError):
            return sorted(names)  # not an aelab run of any version
        return sorted(n for n in names if n not in LEGACY_FILES or (folder / n).is_symlink())
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
            found += [
                f"{name}/{p.relative_to(entry)}"
                for p in entry.rglob("*")
                if not p.is_dir() and f"{name}/{p.relative_to(entry)}" not in manifest.files
            ]
        elif name not in manifest.files:
            found.append(name)
    return found


def _adopt_legacy_workshop(folder: Path) -> Manifest:
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


def _refuse_held(target: Path, name: str, kind: str) -> None:
    """A folder that holds anything is not written without ``overwrite``."""
    held = [e.name for e in target.iterdir() if e.name != LOCK]
    if not held:
        return
    manifest = Manifest.read(target)
    hint = ""
    if manifest is not None and manifest.kind == "train" and manifest.checkpoint is None:
        hint = " (an interrupted run with no checkpoint yet)"
    also = "resume=True to continue it, " if kind == "train" else ""
    raise ValueError(
        f"{name}='{target}' already holds files{hint}; pass overwrite=True to replace an "
        f"earlier run, {also}or choose another folder"
    )


def _refuse_foreign(target: Path, name: str) -> None:
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


class RunDir:
    """A run folder this process writes, holding its lock until :meth:`close`.

    Open one with :meth:`create` (a new run, or the replacement of an earlier one) or
    :meth:`resume`. Files go into :attr:`path`: the folder itself, or while an earlier run is
    being replaced, the hidden sibling that :meth:`close` exchanges with it.
    """

    def __init__(self, target: Path, path: Path, manifest: Manifest, fds: list[int]) -> None:
        self.target, self.path, self.manifest = target, path, manifest
        self._fds = fds
        self._fresh = False  # empty when claimed: what a failure before any checkpoint removes
        self._created = False  # and this process made the folder: removed too

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        out: str | os.PathLike | None,
        *,
        kind: str,
        overwrite: bool = False,
        name: str = "out",
        stem: str = "run",
    ) -> RunDir:
        """Claim ``out`` for a new run of ``kind``: an empty or missing folder, or, with
        ``overwrite``, a folder holding only an earlier aelab run (replaced at :meth:`close`).
        ``out=None`` claims a new folder ``runs/STEM-DATE-TIME`` (see :func:`unique_path`)."""
        if out is None:
            target = unique_path("runs", f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
            run = cls(target, target, Manifest(kind), [_lock(target, name)])
            run._fresh = run._created = True
            return run
        target = Path(out)
        if target.is_symlink():
            raise ValueError(
                f"{name}='{target}' is a symbolic link; aelab writes runs only into real folders "
                f"(pass the folder it points to, {os.path.realpath(target)!r}, to use it)"
            )
        if target.exists() and not target.is_dir():
            raise ValueError(f"{name}='{target}' is a file; expected a folder for the run")
        check_writable(target)
        _repair_siblings(target)
        existed = target.exists()
        if existed and not overwrite:
            _refuse_held(target, name, kind)  # before writing even a lock into someone's folder
        if existed and overwrite:
            _refuse_foreign(target, name)
        target.mkdir(parents=True, exist_ok=True)
        fds = [_lock(target, name)]
        try:
            manifest = Manifest.read(target)
            _remove_leftovers(target, manifest)
            if not any(e.name != LOCK for e in target.iterdir()):
                run = cls(target, target, Manifest(kind), fds)
                run._fresh, run._created = True, not existed
                return run
            if not overwrite:
                _refuse_held(target, name, kind)
            _refuse_foreign(target, name)  # again, under the lock
            staging = target.with_name(f".{target.name}{_NEW}{uuid.uuid4().hex[:8]}")
            staging.mkdir()
            fds.append(_lock(staging, name))
            return cls(target, staging, Manifest(kind), fds)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    @classmethod
    def resume(cls, out: str | os.PathLike, *, kind: str = "train", name: str = "out") -> RunDir:
        """Open the run of ``kind`` in ``out`` to continue or update it, its leftovers removed.

        A workshop written by aelab 0.1 (no manifest; its ``workshop.json`` and the files it
        writes, recognised by name) is adopted: it gets a manifest listing them.
        """
        target = Path(out)
        marker = "workshop.json" if kind == "workshop" else CONFIG
        if target.is_symlink():
            raise ValueError(f"{name}='{target}' is a symbolic link; pass the folder itself")
        if target.exists() and not target.is_dir():
            raise ValueError(f"{name}='{target}' is a file; expected a folder for the run")
        if not (target / marker).is_file():
            what = "workshop" if kind == "workshop" else "run"
            raise ValueError(f"{name}='{target}' holds no {what} to resume (no {marker})")
        manifest = Manifest.read(target)
        if manifest is None and kind == "workshop":
            manifest = _adopt_legacy_workshop(target)
        if manifest is None:
            raise ValueError(
                f"{name}='{target}' was written by aelab 0.1 (no {MANIFEST}): it can be loaded "
                "and reported but not resumed; train it again"
            )
        if manifest.kind != kind:
            raise ValueError(
                f"{name}='{target}' holds a run of kind {manifest.kind!r}, not {kind!r}"
            )
        fds = [_lock(target, name)]
        _remove_leftovers(target, manifest)
        return cls(target, target, manifest, fds)

    # -- writing ----------------------------------------------------------------------------

    def write(self, name: str, data: bytes, *, commit: bool = True) -> None:
        """A file of the run (e.g. ``config.json``, ``figures/x.png``), recorded in the manifest
        (written now, or with the next commit when ``commit`` is False). Never through a
        symbolic link: a folder on the way that is one is an error."""
        folder = self.path
        for part in Path(name).parts[:-1]:
            folder = folder / check_name(part, "name")
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                raise ValueError(
                    f"'{folder}' is a symbolic link or a file; aelab writes only into real "
                    "folders of its own"
                )
            folder.mkdir(exist_ok=True)
        self.manifest.files[name] = write_bytes(self.path / name, data)
        if commit:
            self.manifest.write(self.path)

    def write_json(self, name: str, obj: Any) -> None:
        self.write(name, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))

    def read_json(self, name: str) -> Any:
        """A JSON file of the run, checked against its SHA-256 in the manifest."""
        return read_json(self.manifest.verified(self.path, name))

    def commit_checkpoint(self, state: dict[str, Any]) -> None:
        """Make ``state`` (a trainer's state dict) the run's checkpoint, all of it or none."""
        epoch, before = int(state["epoch"]), self.manifest.checkpoint
        name = f"checkpoint-{epoch:06d}"
        if before == name:  # already in force: nothing trained since it was loaded
            return
        tmp = self.path / f".{name}{TMP_MARK}{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            digests = save_state(tmp, state)
            fsync_dir(tmp)
            if (self.path / name).exists():  # a copy written before an interruption
                shutil.rmtree(self.path / name)
            os.rename(tmp, self.path / name)
            fsync_dir(self.path)
        except Exception as e:
            shutil.rmtree(tmp, ignore_errors=True)
            kept = (
                f"the checkpoint of epoch {self.manifest.epoch} is kept"
                if before
                else ("no earlier checkpoint exists")
            )
            reason = getattr(e, "strerror", None) or " ".join(str(e).split()) or type(e).__name__
            raise CheckpointError(
                f"could not write the checkpoint of epoch {epoch} into '{self.target}' "
                f"({reason}); {kept}"
            ) from None
        files = {k: v for k, v in self.manifest.files.items() if not k.startswith("checkpoint-")}
        files |= {f"{name}/{k}": v for k, v in digests.items()}
        self.manifest.files, self.manifest.epoch, self.manifest.checkpoint = files, epoch, name
        self.manifest.complete = False
        self.manifest.write(self.path)
        if before and before != name:
            shutil.rmtree(self.path / before, ignore_errors=True)

    def publish(self) -> None:
        """Mark the run finished: its final weights and history at the top of the folder (hard
        links to the last checkpoint's files), recorded in the manifest."""
        checkpoint = self.manifest.checkpoint
        if checkpoint is None:
            raise ValueError(f"'{self.target}' has no checkpoint to publish")
        for name in ("model.safetensors", "history.json"):
            source = self.path / checkpoint / name
            tmp = self.path / f".{name}{TMP_MARK}{uuid.uuid4().hex[:8]}"
            try:
                os.link(source, tmp)
            except OSError:  # a file system without hard links: a copy
                shutil.copyfile(source, tmp)
            os.replace(tmp, self.path / name)
            self.manifest.files[name] = self.manifest.files[f"{checkpoint}/{name}"]
        fsync_dir(self.path)
        self.manifest.complete = True
        self.manifest.write(self.path)

    def load_state(self) -> dict[str, Any] | None:
        """The checkpoint in force, every file verified; None when there is none yet."""
        checkpoint = self.manifest.checkpoint
        if checkpoint is None:
            return None
        for name in STATE_FILES:
            self.manifest.verified(self.path, f"{checkpoint}/{name}")
        return load_state(self.path / checkpoint)

    # -- ending -----------------------------------------------------------------------------

    def kept(self) -> str:
        """What :meth:`abort` keeps, said for a message."""
        if self.path != self.target:
            return f"the earlier run in '{self.target}' is kept"
        if self.manifest.checkpoint is None:
            return "nothing was kept" if self._fresh else f"'{self.target}' is as it was"
        return (
            f"the checkpoint of epoch {self.manifest.epoch} is kept in '{self.target}' "
            "(resume=True continues from it)"
        )

    def close(self) -> None:
        """Finish: put a replacement in place of the earlier run, then release the lock."""
        if self.path != self.target:
            old = _replace(self.path, self.target)
            fsync_dir(self.target.parent)
            shutil.rmtree(old, ignore_errors=True)  # the earlier run: aelab's files only
        self._release()

    def abort(self) -> None:
        """After a failure: nothing half-made is left behind. A replacement is thrown away (the
        earlier run stays); a new run with no checkpoint yet is removed; one with a checkpoint is
        kept, to be resumed."""
        try:
            if self.path != self.target:
                shutil.rmtree(self.path, ignore_errors=True)
            elif self._fresh and self.manifest.checkpoint is None:
                for entry in self.path.iterdir():
                    if entry.name != LOCK:
                        with contextlib.suppress(OSError):
                            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                with contextlib.suppress(OSError):
                    (self.path / LOCK).unlink()
                    if self._created:
                        self.path.rmdir()
        finally:
            self._release()

    def _release(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def check_out_dir(out: str | os.PathLike, *, resume: bool, overwrite: bool) -> Path:
    """Whether ``out`` could be written now, without claiming it (for checks before loading)."""
    out = Path(out)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other; pass one")
    if resume:
        RunDir.resume(out).close()
        return out
    RunDir.create(out, kind="train", overwrite=overwrite).abort()
    return out


__all__ = [
    "CheckpointError",
    "RunDir",
    "RunInUse",
    "check_name",
    "check_out_dir",
    "check_writable",
    "foreign_entries",
    "unique_path",
]
