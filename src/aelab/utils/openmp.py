"""How aelab's CPU threads wait for each other: passively, so that a busy machine does not stall
training.

PyTorch runs each operation on a team of OpenMP threads (GNU libgomp in the PyTorch wheels). By
default a thread that has finished its share spins for about 300,000 iterations before it sleeps
(libgomp's ``GOMP_SPINCOUNT`` when ``OMP_WAIT_POLICY`` is unset). On a quiet machine that saves a
wake-up between operations; on a shared one, where the other thread of the team is waiting for a
core, the spinning thread burns the time slice its partner needs. On a 2-core machine under load
6-9 a user measured ``aelab train shallow --epochs 10`` at 262 s with two spinning threads and
52-70 s with one; with ``OMP_WAIT_POLICY=PASSIVE`` two threads do as well as one there and as
well as spinning ones on a quiet machine (``benchmarks/README.md``, "A busy machine"). The policy
changes when a thread sleeps, never what it computes: the floats are the same.

OpenMP reads its wait policy once, when the runtime is loaded, that is when ``torch`` is first
imported, and no call changes it afterwards. So this module is imported first by ``aelab``'s own
``__init__`` and sets the environment variable then, the one thing in aelab done at import, and
only where it can still take effect and the user has not chosen: not when ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT`` is set, and not when ``torch`` is already imported (import aelab before torch,
or set ``OMP_WAIT_POLICY=PASSIVE`` yourself). Processes started from aelab's inherit the setting.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "OMP_WAIT_POLICY"
_USER_SETTINGS = (WAIT_POLICY, "GOMP_SPINCOUNT")


def wait_passively() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` for the OpenMP runtime torch will load, unless the user
    set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` or torch is loaded already; returns whether
    this process's threads wait passively."""
    if not any(name in os.environ for name in _USER_SETTINGS) and "torch" not in sys.modules:
        os.environ[WAIT_POLICY] = "PASSIVE"
    return os.environ.get(WAIT_POLICY, "").strip().upper() == "PASSIVE"


PASSIVE = wait_passively()
