"""The run folder: everything aelab writes for a trained model and reads back.

:mod:`.config` (``config.json``, :class:`RunConfig`), :mod:`.manifest` (``aelab-run.json``: the
mark and the digest of every file), :mod:`.ownership` and :mod:`.rundir` (claiming, locking,
replacing and checkpointing a folder), :mod:`.checkpoint` (a trainer's state as files),
:mod:`.run` (:class:`Run`, :func:`load_run`), :mod:`.training` (:func:`train_run`,
:func:`resume_run`).
"""

from .config import RunConfig, current_versions
from .run import Run, check_split, has_weights, load_run, open_run
from .training import read_state, resume_run, train_run

__all__ = [
    "Run",
    "RunConfig",
    "check_split",
    "current_versions",
    "has_weights",
    "load_run",
    "open_run",
    "read_state",
    "resume_run",
    "train_run",
]
