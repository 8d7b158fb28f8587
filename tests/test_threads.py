"""The thread count follows the free cores (aelab.utils.threads): the policy from the environment,
/proc/stat read by hand-made files and by the real one under real busy processes, the decision,
and the Trainer recording and restoring the count."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from aelab.runs.checkpoint import check_history
from aelab.training.config import TrainConfig
from aelab.training.trainer import Trainer
from aelab.utils import threads
from aelab.utils.threads import Threads, busy_seconds, choose, policy

LINUX = os.path.exists("/proc/stat") and hasattr(os, "sched_getaffinity")


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, None),
        ({"AELAB_THREADS": "auto"}, None),
        ({"AELAB_THREADS": " AUTO "}, None),
        ({"AELAB_THREADS": "3"}, 3),
        ({"AELAB_THREADS": "", "OMP_NUM_THREADS": "1"}, "torch"),  # the user's choice is kept
        ({"AELAB_THREADS": "auto", "OMP_NUM_THREADS": "1"}, None),  # unless asked to adapt
    ],
)
def test_policy_from_the_environment(environ, expected):
    expected = torch.get_num_threads() if expected == "torch" else expected
    assert policy(environ) == expected


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "2x"])
def test_a_bad_count_is_one_line_naming_the_variable(value):
    with pytest.raises(ValueError) as e:
        policy({"AELAB_THREADS": value})
    assert str(e.value) == (
        f"AELAB_THREADS={value!r} is not valid; expected 'auto' or a positive integer"
    )


STAT = """cpu  900 0 100 5000 0 0 0 0 0 0
cpu0 300 10 40 2000 50 5 5 20 100 0
cpu1 200 0 30 1000 0 0 0 0 0 0
cpu2 400 0 30 2000 0 0 0 0 0 0
intr 12345 1 2
ctxt 999
"""


def test_busy_seconds_read_by_hand(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(STAT)
    tick = os.sysconf("SC_CLK_TCK")
    # busy = user + nice + system + irq + softirq + steal (idle, iowait out; guest is in user)
    cpu0, cpu1, cpu2 = 300 + 10 + 40 + 5 + 5 + 20, 200 + 30, 400 + 30
    assert busy_seconds({0, 1}, str(stat)) == pytest.approx((cpu0 + cpu1) / tick)
    assert busy_seconds({2}, str(stat)) == pytest.approx(cpu2 / tick)
    assert busy_seconds({5}, str(stat)) == 0.0
    if hasattr(os, "sched_getaffinity"):  # by default, the CPUs this process may run on
        mine = os.sched_getaffinity(0)
        expected = sum(b for i, b in enumerate((cpu0, cpu1, cpu2)) if i in mine)
        assert busy_seconds(None, str(stat)) == pytest.approx(expected / tick)


@pytest.mark.parametrize("text", ["", "cpu0 1 2 x 4 5 6 7 8\n", "cpu0 1 2\n", "cpuX 1 2 3 4 5\n"])
def test_a_stat_file_that_cannot_be_read_is_none(tmp_path, text):
    stat = tmp_path / "stat"
    stat.write_text(text)
    if text == "":
        assert busy_seconds({0}, str(stat)) == 0.0  # no CPU lines: nothing busy
    else:
        assert busy_seconds({0}, str(stat)) is None
    assert busy_seconds({0}, str(tmp_path / "missing")) is None


@pytest.mark.parametrize(
    "others, cpus, ceiling, expected",
    [(0.0, 2, 2, 2), (0.4, 2, 2, 2), (0.6, 2, 2, 1), (1.0, 2, 2, 1), (2.7, 2, 2, 1),
     (0.0, 8, 4, 4), (3.0, 8, 8, 5), (0.0, 2, 1, 1)],
)  # fmt: skip
def test_choose_the_free_cores_between_one_and_the_ceiling(others, cpus, ceiling, expected):
    assert choose(others, cpus, ceiling) == expected


def test_a_fixed_count_is_set_and_given_back():
    before = torch.get_num_threads()
    t = Threads(fixed=1)
    try:
        assert torch.get_num_threads() == 1
        time.sleep(0.05)
        assert t.update() == 1  # never adapted
    finally:
        t.close()
    assert torch.get_num_threads() == before


def _busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(n)]


def _end(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


@pytest.mark.skipif(not LINUX, reason="reads /proc/stat, which only Linux has")
def test_every_core_busy_elsewhere_leaves_one_thread():
    # as many busy-loop processes as this process has cores: none is free, whatever the machine
    cpus = len(os.sched_getaffinity(0))
    before = torch.get_num_threads()
    procs = _busy(cpus)
    try:
        time.sleep(0.3)
        t = Threads(fixed=None, window=0.5)
        time.sleep(0.7)
        assert t.update() == 1 == torch.get_num_threads()
        # the measurement is of the others: this process's own busy time does not count
        start = time.monotonic()
        while time.monotonic() - start < 0.6:
            pass
        assert t.update() == 1
    finally:
        _end(procs)
        t.close()
    assert torch.get_num_threads() == before


@pytest.mark.skipif(not LINUX, reason="reads /proc/stat, which only Linux has")
def test_a_window_too_short_decides_nothing():
    t = Threads(fixed=None, window=60.0)
    try:
        torch.set_num_threads(1)
        assert t.update() == 1  # kept: less than a window since the start
    finally:
        t.close()


@pytest.mark.skipif(not LINUX, reason="reads /proc/stat, which only Linux has")
def test_the_trainer_records_the_threads_and_follows_busy_cores(monkeypatch):
    monkeypatch.delenv("AELAB_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "WINDOW", 0.05)
    from aelab.models import build_model

    model = build_model("shallow", (1, 32, 32))
    x = torch.rand(1024, 1, 32, 32)  # 20 epochs last longer than a window on any machine
    before = torch.get_num_threads()
    procs = _busy(len(os.sched_getaffinity(0)))
    try:
        time.sleep(0.3)
        trainer = Trainer(model, TrainConfig(epochs=20, batch_size=32, device="cpu", seed=0))
        history = trainer.fit(x, progress=False)
    finally:
        _end(procs)
    assert torch.get_num_threads() == before  # given back
    counts = [r["threads"] for r in history]
    # the first epoch on the count it started with, then one thread from the first decision
    first = counts.index(1) if 1 in counts else len(counts)
    assert counts[0] == before and counts[-1] == 1, counts
    assert all(c == before for c in counts[:first]) and all(c == 1 for c in counts[first:])
    assert check_history(history, "history") == history


def test_the_environment_count_reaches_the_trainer(monkeypatch):
    monkeypatch.setenv("AELAB_THREADS", "1")
    from aelab.models import build_model

    before = torch.get_num_threads()
    trainer = Trainer(build_model("shallow", (1, 8, 8)), TrainConfig(epochs=2, device="cpu"))
    history = trainer.fit(torch.rand(64, 1, 8, 8), progress=False)
    assert [r["threads"] for r in history] == [1, 1]
    assert torch.get_num_threads() == before
    monkeypatch.setenv("AELAB_THREADS", "none")
    with pytest.raises(ValueError, match="AELAB_THREADS='none' is not valid"):
        Trainer(build_model("shallow", (1, 8, 8)), TrainConfig(epochs=1, device="cpu")).fit(
            torch.rand(8, 1, 8, 8), progress=False
        )


@pytest.mark.parametrize("threads_", [0, -2, "2", 1.0, True, None])
def test_a_history_with_a_bad_thread_count_is_refused(threads_):
    record = {"epoch": 1, "loss": 0.1, "heldout_loss": None, "validation_loss": None,
              "seconds": 1.0, "threads": threads_}  # fmt: skip
    with pytest.raises(ValueError, match="threads a positive integer"):
        check_history([record], "history.json")
    del record["threads"]  # runs written before the count was recorded
    assert check_history([record], "history.json") == [record]
