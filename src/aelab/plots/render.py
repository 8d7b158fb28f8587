"""Many figures to PNG bytes at once, in forked worker processes where the platform allows.

Rendering is matplotlib's Agg rasteriser and a PNG encoder, both single-threaded and holding the
interpreter lock, so a report's hundred-odd figures render on one core while the others idle
(114 PNGs, 16-17 s on a 2-core CPU; 8.6-8.8 s with two workers). :func:`pngs` forks ``workers``
processes *after* the figures exist: each inherits them in memory, renders its share (largest
first) and writes back only the PNG bytes, each behind its index and length, through a pipe.
Nothing is pickled either way.

Every failure falls back to the calling process, so the result never depends on the workers:
the figures a worker did not send whole (it was killed, ran out of memory, or a figure raised)
are rendered here, and an error a figure really has is raised here, as
:func:`aelab.plots.png_bytes` raises it. An interrupt (Ctrl-C) here kills the workers at once.
Where ``fork`` is missing or unsafe (not Linux) or ``workers < 2``, everything renders here.
"""

from __future__ import annotations

import os
import selectors
import signal
import struct
import sys
import warnings
from collections.abc import Sequence

from matplotlib.figure import Figure

from .grid import png_bytes

_HEADER = struct.Struct("<QQ")  # a figure's index and its PNG's length, before the PNG


def pngs(figures: Sequence[Figure], dpi: int = 100, workers: int = 1) -> list[bytes]:
    """Each of ``figures`` as the bytes of a PNG of ``dpi``, rendered by up to ``workers``
    processes (the same bytes as :func:`aelab.plots.png_bytes` gives, in the same order)."""
    figures = list(figures)
    for fig in figures:
        if not isinstance(fig, Figure):
            raise ValueError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    workers = min(int(workers), len(figures))
    done: dict[int, bytes] = {}
    if workers >= 2 and can_fork():
        order = sorted(range(len(figures)), key=lambda i: -_inches(figures[i]))
        done = _forked(figures, [order[k::workers] for k in range(workers)], dpi)
    return [done[i] if i in done else png_bytes(f, dpi=dpi) for i, f in enumerate(figures)]


def can_fork() -> bool:
    """Whether :func:`pngs` forks: on Linux, where a forked child of a threaded process may
    render (macOS's system libraries may not be used after a fork)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _forked(figures: list[Figure], shares: list[list[int]], dpi: int) -> dict[int, bytes]:
    """The PNGs the workers sent whole, by index: one forked worker per share."""
    children: dict[int, int] = {}  # pipe's read end -> the worker's pid
    buffers: dict[int, bytearray] = {}
    done: dict[int, bytes] = {}
    try:
        for share in shares:
            read, write = os.pipe()
            with warnings.catch_warnings():
                # Python 3.12+ warns on fork in a process with threads (PyTorch's): a worker
                # only rasterises and encodes figures, takes none of those threads' locks, and
                # leaves by os._exit
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    pid = os.fork()
                except OSError:  # no process left to start: the rest render here
                    os.close(read)
                    os.close(write)
                    break
            if pid == 0:  # the worker: never returns
                os.close(read)
                _work(figures, share, dpi, write)
            os.close(write)
            children[read], buffers[read] = pid, bytearray()
        with selectors.DefaultSelector() as selector:
            for read in children:
                selector.register(read, selectors.EVENT_READ)
            open_pipes = len(children)
            while open_pipes:
                for key, _ in selector.select():
                    chunk = os.read(key.fd, 1 << 20)
                    if chunk:
                        buffers[key.fd] += chunk
                    else:  # the worker is done, or dead
                        selector.unregister(key.fd)
                        open_pipes -= 1
        for buffer in buffers.values():
            done.update((i, png) for i, png in _records(buffer).items() if i < len(figures))
    finally:
        for read, pid in children.items():
            try:
                os.kill(pid, signal.SIGKILL)  # finished already, or interrupted: no waiting
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            os.close(read)
    return done


def _work(figures: list[Figure], share: list[int], dpi: int, fd: int) -> None:
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends a worker at once
        with os.fdopen(fd, "wb") as out:
            for i in share:
                png = png_bytes(figures[i], dpi=dpi)
                out.write(_HEADER.pack(i, len(png)) + png)
    except BaseException:  # a figure that cannot be drawn: the caller renders it and raises
        code = 1
    finally:
        os._exit(code)


def _records(buffer: bytearray) -> dict[int, bytes]:
    """The whole records in ``buffer``; a record cut short (a worker killed) is left out."""
    out, at = {}, 0
    while at + _HEADER.size <= len(buffer):
        i, n = _HEADER.unpack_from(buffer, at)
        if at + _HEADER.size + n > len(buffer):
            break
        out[int(i)] = bytes(buffer[at + _HEADER.size : at + _HEADER.size + n])
        at += _HEADER.size + n
    return out


def _inches(fig: Figure) -> float:
    w, h = fig.get_size_inches()
    return float(w * h)


__all__ = ["can_fork", "pngs"]
