"""A full disk during training: one line naming the folder, and the earlier checkpoint kept whole.
On a real small file system (a tmpfs mounted for the test, which needs root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from aelab.runs.training import read_state

pytestmark = pytest.mark.slow  # trains, kills, builds or starts a browser


@pytest.fixture
def small_disk(tmp_path):
    """A 900 KiB tmpfs: room for one checkpoint of the small model below, not for two."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=900k", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"mount refused here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(small_disk):
    out = small_disk / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "aelab", "train", "deep", "--data", "digits", "--epochs", "5",
         "--checkpoint-every", "1", "--batch-size", "256", "--out", str(out), "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) == 2  # the summary line, the error
    assert "could not write the checkpoint of epoch 2 into" in lines[-1]
    assert "No space left on device" in lines[-1] and "epoch 1 is kept" in lines[-1]
    state = read_state(out)  # whole and verified
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert not [p for p in out.iterdir() if ".aelab-tmp-" in p.name]  # the partial one removed
    # with room again, the run continues from it
    shutil.copytree(out, small_disk.parent / "moved")
    resumed = subprocess.run(
        [sys.executable, "-m", "aelab", "train", "deep", "--out", str(small_disk.parent / "moved"),
         "--resume", "--quiet"], capture_output=True, text=True,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
