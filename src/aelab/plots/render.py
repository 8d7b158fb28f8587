"""Many figures to PNG bytes at once, in forked worker processes where the platform allows.

Rendering is matplotlib's Agg rasteriser and a PNG encoder, both single-threaded and holding the
interpreter lock, so a report's hundred-odd figures render on one core while the others idle.
:func:`pngs` forks ``workers`` processes *after* the figures exist: each inherits them in memory
(nothing is pickled on the way in), renders its share largest first and sends back only bytes.
On a 2-core CPU a workshop report's 114 PNGs took 16 s in one process.

Every failure falls back to the calling process, so the result never depends on the workers:
a worker that dies (killed, out of memory) or raises leaves its figures to be rendered here, and
an error a figure really has is raised here, as :func:`aelab.plots.png_bytes` raises it. Where
``fork`` is missing or unsafe (not Linux) or ``workers < 2``, everything renders here.
"""

from __future__ import annotations

import multiprocessing
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from matplotlib.figure import Figure

from .grid import png_bytes

_FIGURES: Sequence[Figure] = ()  # what the forked workers inherit: set only around a fork


def _render(i: int, dpi: int) -> bytes:
    return png_bytes(_FIGURES[i], dpi=dpi)


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def pngs(figures: Sequence[Figure], dpi: int = 100, workers: int = 1) -> list[bytes]:
    """Each of ``figures`` as the bytes of a PNG of ``dpi``, rendered by up to ``workers``
    processes (the same bytes as :func:`aelab.plots.png_bytes` gives, in the same order)."""
    global _FIGURES
    figures = list(figures)
    for fig in figures:
        if not isinstance(fig, Figure):
            raise ValueError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    out: list[bytes | None] = [None] * len(figures)
    workers = min(int(workers), len(figures))
    if workers >= 2 and _can_fork():
        # largest first: the last figures to finish are then the small ones
        order = sorted(range(len(figures)), key=lambda i: -_pixels(figures[i]))
        _FIGURES = figures
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns on fork in a process with threads (PyTorch's): the workers
                # only rasterise and encode figures, and exit; none of those threads' locks
                # is taken there
                warnings.filterwarnings("ignore", r".*fork\(\) may lead to deadlocks", Warning)
                context = multiprocessing.get_context("fork")
                with ProcessPoolExecutor(workers, mp_context=context) as pool:
                    futures = {i: pool.submit(_render, i, dpi) for i in order}
                    for i, future in futures.items():
                        try:
                            out[i] = future.result()
                        except Exception:  # a dead or failing worker: its figure is rendered here
                            pass
        except Exception:  # no pool at all (no processes left, say): all here
            pass
        finally:
            _FIGURES = ()
    return [png if png is not None else png_bytes(f, dpi=dpi) for f, png in zip(figures, out)]


def _pixels(fig: Figure) -> float:
    w, h = fig.get_size_inches()
    return float(w * h)


__all__ = ["pngs"]
