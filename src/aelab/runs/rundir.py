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
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from aelab.runs.checkpoint import save_state
from aelab.runs.manifest import MANIFEST, Manifest, unchecked
from aelab.runs.ownership import (
    CONFIG,
    LOCK,
    NEW_MARK,
    RunInUse,
    adopt_legacy_workshop,
    check_name,
    check_writable,
    discard,
    foreign_entries,
    lock_folder,
    refuse_foreign,
    refuse_held,
    remove_leftovers,
    repair_siblings,
    replace_folder,
    unique_path,
)
from aelab.utils.files import TMP_MARK, fsync_dir, read_json, write_bytes


class CheckpointError(OSError):
    """A checkpoint could not be written; the previous one is still in force."""


class RunDir:
    """A run folder this process writes, holding its lock until :meth:`close`.

    Open one with :meth:`create` (a new run, or the replacement of an earlier one) or
    :meth:`resume`. Files go into :attr:`path`: the folder itself, or while an earlier run is
    being replaced, the hidden sibling that :meth:`close` exchanges with it.
    """

    def __init__(self, target: Path, path: Path, manifest: Manifest, fds: list[int]) -> None:
        self.target, self.path, self.manifest = target, path, manifest
        self._fds = fds
        self.kept_folder: Path | None = None  # see close()
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
            run = cls(target, target, Manifest(kind), [lock_folder(target, name)])
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
        repair_siblings(target)
        existed = target.exists()
        if existed and not overwrite:
            refuse_held(target, name, kind)  # before writing even a lock into someone's folder
        if existed and overwrite:
            refuse_foreign(target, name)
        target.mkdir(parents=True, exist_ok=True)
        fds = [lock_folder(target, name)]
        try:
            manifest = Manifest.read(target)
            remove_leftovers(target, manifest)
            if not any(e.name != LOCK for e in target.iterdir()):
                run = cls(target, target, Manifest(kind), fds)
                run._fresh, run._created = True, not existed
                return run
            if not overwrite:
                refuse_held(target, name, kind)
            refuse_foreign(target, name)  # again, under the lock
            staging = target.with_name(f".{target.name}{NEW_MARK}{uuid.uuid4().hex[:8]}")
            staging.mkdir()
            fds.append(lock_folder(staging, name))
            return cls(target, staging, Manifest(kind), fds)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    @classmethod
    def resume(
        cls, out: str | os.PathLike, *, kind: str = "train", name: str = "out", legacy: bool = False
    ) -> RunDir:
        """Open the run of ``kind`` in ``out`` to continue or update it, its leftovers removed.

        A folder without a manifest is refused; with ``legacy``, a workshop written by aelab 0.1
        (its ``workshop.json`` and the files it writes, recognised by name) is adopted: it gets a
        manifest listing them.
        """
        target = Path(out)
        marker = "workshop.json" if kind == "workshop" else CONFIG
        if target.is_symlink():
            raise ValueError(f"{name}='{target}' is a symbolic link; pass the folder itself")
        if target.exists() and not target.is_dir():
            raise ValueError(f"{name}='{target}' is a file; expected a folder for the run")
        if not (target / marker).is_file():
            what = "aelab workshop" if kind == "workshop" else "run to resume"
            raise ValueError(f"{name}='{target}' holds no {what} (no {marker})")
        manifest = Manifest.read(target)
        if manifest is None and kind == "workshop":
            if not legacy:
                raise unchecked(target)
            manifest = adopt_legacy_workshop(target)
        if manifest is None:
            raise ValueError(
                f"{name}='{target}' was written by aelab 0.1 (no {MANIFEST}): it can be loaded "
                "and reported but not resumed; train it again"
            )
        if manifest.kind != kind:
            raise ValueError(
                f"{name}='{target}' holds a run of kind {manifest.kind!r}, not {kind!r}"
            )
        fds = [lock_folder(target, name)]
        remove_leftovers(target, manifest)
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

    def write_json(self, name: str, obj: Any, *, commit: bool = True) -> None:
        self.write(name, (json.dumps(obj, indent=2) + "\n").encode("utf-8"), commit=commit)

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

    # -- ending -----------------------------------------------------------------------------

    def trained_models(self) -> list[str]:
        """A workshop's models that have a run folder with something to resume from."""
        runs = self.manifest.runs if self.manifest.kind == "workshop" else []
        return [r for r in runs if (self.path / r / MANIFEST).is_file()]

    def kept(self) -> str:
        """What :meth:`abort` keeps, said for a message."""
        if self.path != self.target:
            return f"the earlier run in '{self.target}' is kept"
        if self.trained_models():
            return (
                f"the models trained so far ({', '.join(self.trained_models())}) are kept in "
                f"'{self.target}' (resume=True continues)"
            )
        if self.manifest.checkpoint is None:
            return "nothing was kept" if self._fresh else f"'{self.target}' is as it was"
        return (
            f"the checkpoint of epoch {self.manifest.epoch} is kept in '{self.target}' "
            "(resume=True continues from it)"
        )

    def close(self) -> None:
        """Finish: put a replacement in place of the earlier run, then release the lock."""
        if self.path != self.target:
            old = replace_folder(self.path, self.target)
            fsync_dir(self.target.parent)
            # the earlier run: aelab's files go; anything else that reached it (written while
            # this run trained) is kept beside, in kept_folder
            self.kept_folder = discard(old)
        self._release()

    def abort(self) -> None:
        """After a failure: nothing half-made is left behind. A replacement is thrown away (the
        earlier run stays); a new run with no checkpoint yet is removed; one with a checkpoint is
        kept, to be resumed, and so is a workshop with a model trained or checkpointed."""
        try:
            if self.path != self.target:
                shutil.rmtree(self.path, ignore_errors=True)
            elif self._fresh and self.manifest.checkpoint is None and not self.trained_models():
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
        raise ValueError("resume=True and overwrite=True exclude each other; pass one")
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
