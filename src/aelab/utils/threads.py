"""How many threads training uses: as many as there are cores free, decided again as it runs.

PyTorch splits each operation between its intra-op threads (one per core by default) and waits
for the last of them. When another process keeps a core busy, one of those threads shares its
core and every operation waits for it: on a 2-core CPU with one busy-loop process, the
notebook's conv model trains 1.5x faster with one thread than with two, and with two it falls
behind the Keras port (``benchmarks/README.md``, "A busy machine"). So while a model trains on
a CPU, :class:`Threads` measures how much CPU time the rest of the machine takes (``/proc/stat``
less this process's own time, over windows of at least :data:`WINDOW` seconds) and sets
``torch.set_num_threads`` to the cores left free, between 1 and the count training started
with. Between operations the threads spin only briefly (:mod:`aelab.utils.openmp`).

The thread count changes the order of some floating-point sums, so two runs under different
loads may differ in the last bits of their losses. ``AELAB_THREADS=N`` (a positive integer)
trains with exactly ``N`` threads and ``AELAB_THREADS=auto`` (the default) adapts; where
``OMP_NUM_THREADS`` is set and ``AELAB_THREADS`` is not, the count the user chose is kept.
Where ``/proc/stat`` cannot be read (not Linux) the count is left as it is.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

ENV = "AELAB_THREADS"
WINDOW = 1.0  # seconds of measurement behind each decision: /proc/stat counts in 10 ms ticks
_STAT = "/proc/stat"


def policy(environ: Any = None) -> int | None:
    """The thread count the environment fixes (``AELAB_THREADS=N``, or ``OMP_NUM_THREADS`` when
    ``AELAB_THREADS`` is unset), or None to adapt. A bad ``AELAB_THREADS`` is a ValueError."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV, "").strip()
    if not value:
        return torch.get_num_threads() if environ.get("OMP_NUM_THREADS") else None
    if value.lower() == "auto":
        return None
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise ValueError(f"{ENV}={value!r} is not valid; expected 'auto' or a positive integer")


def busy_seconds(cpus: set[int] | None = None, path: str = _STAT) -> float | None:
    """CPU seconds the CPUs ``cpus`` (default: those this process may run on) have spent busy
    since boot: all but idle and I/O wait, steal included (time the host gave to others). None
    where ``path`` cannot be read or parsed."""
    if cpus is None:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        with open(path, encoding="ascii") as f:
            lines = f.read().splitlines()
        total = 0
        for line in lines:
            name, *fields = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            if cpus is not None and int(name[3:]) not in cpus:
                continue
            ticks = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(ticks) - ticks[3] - ticks[4]  # guest time is inside user already
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def free_cores(others: float, cpus: int) -> float:
    """Cores left when the rest of the machine uses ``others`` cores' worth of CPU."""
    return max(0.0, cpus - others)


def choose(others: float, cpus: int, ceiling: int) -> int:
    """Threads for ``cpus`` cores of which ``others`` are in use elsewhere: the free cores,
    rounded, between 1 and ``ceiling``."""
    return max(1, min(ceiling, round(free_cores(others, cpus))))


class Threads:
    """Sets torch's intra-op thread count for training (module docstring); :meth:`update` after
    each epoch, :meth:`close` at the end restores the count found at the start.

    ``fixed`` (default: :func:`policy`) pins the count instead of adapting.
    """

    def __init__(self, fixed: int | str | None = "env", window: float | None = None) -> None:
        self.before = torch.get_num_threads()
        self.fixed = policy() if fixed == "env" else fixed
        self.window = WINDOW if window is None else window
        self.ceiling = self.fixed or self.before
        self.cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        if self.fixed is not None:
            torch.set_num_threads(self.fixed)
        self._mark = self._sample()

    @property
    def count(self) -> int:
        """The threads the next operations run on."""
        return torch.get_num_threads()

    def _sample(self) -> tuple[float, float, float] | None:
        if self.fixed is not None or self.cpus is None:
            return None
        busy = busy_seconds()
        if busy is None:
            return None
        return time.monotonic(), busy, time.process_time()

    def update(self) -> int:
        """Decide again from the CPU use since the last decision (once :attr:`window` seconds
        have passed); returns the thread count now."""
        if self._mark is None or time.monotonic() - self._mark[0] < self.window:
            return self.count  # /proc/stat is read only when a decision is due
        now = self._sample()
        if now is None:
            return self.count
        elapsed = now[0] - self._mark[0]
        ours = now[2] - self._mark[2]
        others = max(0.0, (now[1] - self._mark[1] - ours) / elapsed)
        self._mark = now
        wanted = choose(others, self.cpus, self.ceiling)
        if wanted != self.count:
            torch.set_num_threads(wanted)
        return wanted

    def close(self) -> None:
        """Give back the thread count found at the start."""
        if torch.get_num_threads() != self.before:
            torch.set_num_threads(self.before)


__all__ = ["ENV", "Threads", "busy_seconds", "choose", "free_cores", "policy"]
