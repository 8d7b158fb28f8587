"""Figures rendered by forked workers: the same bytes as one process, whatever the workers do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from matplotlib.artist import Artist
from matplotlib.figure import Figure

from aelab import plots
from aelab.plots import render

PARENT = os.getpid()
forks = pytest.mark.skipif(not render.can_fork(), reason="renders in one process without fork")


def _figures(n=5):
    rng = np.random.default_rng(0)
    return [plots.image_grid([rng.random((3 + i, 8, 8))], title=f"figure {i}") for i in range(n)]


class _KillsWorker(Artist):
    """Draws nothing in the process that made it; kills any other process that draws it."""

    def draw(self, renderer):
        if os.getpid() != PARENT:
            os.kill(os.getpid(), 9)


class _Fails(Artist):
    def draw(self, renderer):
        raise RuntimeError("this figure cannot be drawn")


@forks
def test_workers_give_the_bytes_one_process_gives_in_order():
    figures = _figures()
    alone = [plots.png_bytes(f, dpi=50) for f in figures]
    assert plots.pngs(figures, dpi=50, workers=2) == alone
    assert plots.pngs(figures, dpi=50, workers=1) == alone
    assert plots.pngs([], dpi=50, workers=2) == []


@forks
def test_a_worker_killed_mid_way_leaves_its_figures_to_this_process():
    figures = _figures()
    alone = [plots.png_bytes(f, dpi=50) for f in figures]
    figures[2].add_artist(_KillsWorker())  # the worker drawing it dies; here it draws nothing
    assert plots.pngs(figures, dpi=50, workers=2) == alone
    assert os.getpid() == PARENT


def test_a_figure_that_cannot_be_drawn_raises_here_as_png_bytes_does():
    figures = _figures(3)
    figures[1].add_artist(_Fails())
    with pytest.raises(RuntimeError, match="this figure cannot be drawn"):
        plots.png_bytes(figures[1])
    with pytest.raises(RuntimeError, match="this figure cannot be drawn"):
        plots.pngs(figures, workers=2)


def test_without_fork_everything_renders_here(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert not render.can_fork()
    figures = _figures(3)
    figures[0].add_artist(_KillsWorker())  # would kill a worker: none is started
    assert plots.pngs(figures, dpi=50, workers=4) == [plots.png_bytes(f, dpi=50) for f in figures]


def test_not_a_figure_is_refused():
    with pytest.raises(ValueError, match="fig must be a matplotlib Figure, got str"):
        plots.pngs([Figure(), "figure.png"], workers=2)


def test_a_record_cut_short_is_left_out():
    whole = render._HEADER.pack(3, 4) + b"abcd" + render._HEADER.pack(5, 6) + b"efghij"
    assert render._records(bytearray(whole)) == {3: b"abcd", 5: b"efghij"}
    assert render._records(bytearray(whole[:-1])) == {3: b"abcd"}
    assert render._records(bytearray(whole[:5])) == {}


SLOW_WORKERS = """
import os, sys, time
import numpy as np
from matplotlib.artist import Artist
from aelab import plots

parent = os.getpid()

class Slow(Artist):
    def draw(self, renderer):
        if os.getpid() != parent:
            time.sleep(120)

figures = [plots.image_grid([np.zeros((2, 4, 4))]) for _ in range(4)]
for f in figures:
    f.add_artist(Slow())
print("rendering", flush=True)
try:
    plots.pngs(figures, workers=2)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
"""


@forks
def test_ctrl_c_while_workers_draw_ends_them_at_once(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(SLOW_WORKERS)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "rendering"
    deadline = time.monotonic() + 60
    while not _children(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = _children(proc.pid)
    assert len(workers) == 2
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 3
    assert time.monotonic() - start < 10  # not the two minutes the workers would draw
    assert proc.stdout.read().strip() == "interrupted"
    for pid in workers:  # killed and reaped: gone, or the number reused by another process
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert b"slow.py" not in f.read()
        except OSError:
            pass


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []
