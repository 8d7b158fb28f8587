"""How aelab's CPU threads wait for each other: a short spin, then sleep, so that a busy machine
does not stall training and a quiet one does not wait on wake-ups.

PyTorch runs each operation on a team of OpenMP threads (GNU libgomp in the PyTorch wheels for
Linux). By default a thread that has finished its share spins for about 300,000 iterations
before it sleeps (libgomp's ``GOMP_SPINCOUNT`` when ``OMP_WAIT_POLICY`` is unset). On a shared
machine, where the other thread of the team is waiting for a core, the spinning thread burns
the time slice its partner needs: on a 2-core machine under load 6-9 a user measured
``aelab train shallow --epochs 10`` at 262 s with two spinning threads and 52-70 s with one.
Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) cures that but costs a wake-up between
operations: on a quiet 2-core CPU the notebook's deep and variational models trained 1.3x and
1.4x slower per epoch than with spinning threads (``benchmarks/README.md``, "A busy machine").

So on Linux aelab spins briefly (``GOMP_SPINCOUNT=3000``: as fast as the default spin when the
machine is quiet) and leaves the busy machine to :mod:`aelab.utils.threads`, which trains on
as many threads as there are cores free (one thread never waits for another). Where the thread
count cannot follow the load (not Linux) the threads wait passively, as before. Neither setting
changes what a thread computes: the floats are the same.

OpenMP reads its wait settings once, when the runtime is loaded, that is when ``torch`` is
first imported, and no call changes them afterwards. So this module is imported first by
``aelab``'s own ``__init__`` and sets the environment variable then, the one thing in aelab done
at import, and only where it can still take effect and the user has not chosen: not when
``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is set, and not when ``torch`` is already imported
(import aelab before torch, or set them yourself). Processes started from aelab's inherit it.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "OMP_WAIT_POLICY"
SPIN_COUNT = "GOMP_SPINCOUNT"
SHORT_SPIN = "3000"  # iterations, a few microseconds: enough to catch the next operation
_USER_SETTINGS = (WAIT_POLICY, SPIN_COUNT)


def wait_briefly() -> str | None:
    """Set how the OpenMP runtime torch will load makes its threads wait, unless the user set
    ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` or torch is loaded already: a short spin on Linux
    (``GOMP_SPINCOUNT``), passive elsewhere. Returns what aelab set, ``"short spin"`` or
    ``"passive"``, or None where it set nothing."""
    if any(name in os.environ for name in _USER_SETTINGS) or "torch" in sys.modules:
        return None
    if sys.platform.startswith("linux"):
        os.environ[SPIN_COUNT] = SHORT_SPIN
        return "short spin"
    os.environ[WAIT_POLICY] = "PASSIVE"
    return "passive"


WAITING = wait_briefly()
