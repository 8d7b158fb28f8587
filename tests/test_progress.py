"""What a run says while it trains and when it ends, in real processes: a line now and then where
stderr is no terminal (CI, nohup, a pipe), the bar on a terminal, nothing with --quiet; and at
the end of aelab run each model's held-out MSE over PCA's and the report's address."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains in processes of its own

TRAIN = ["train", "shallow", "--data", "digits", "--epochs", "2"]
LINE = re.compile(r"shallow: epoch 2/2, loss \d\.\d{5}, held-out \d\.\d{5}, [\d,]+ img/s, .*so far")


def _aelab(args, **kw):
    proc = subprocess.run([sys.executable, "-m", "aelab", *args], capture_output=True,
                          text=True, timeout=600, **kw)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


def test_aelab_run_in_a_pipe_says_how_far_and_ends_with_the_numbers(tmp_path):
    out = tmp_path / "ws"
    proc = _aelab(["run", "--data", "digits", "--models", "shallow,deep,vae", "--epochs", "2",
                   "--out", str(out)])  # fmt: skip
    assert LINE.search(proc.stderr) and re.search(r"^deep: epoch 2/2, loss", proc.stderr, re.M)
    metrics = json.loads((out / "metrics.json").read_text())["models"]
    # shallow's 100 code units are more than 8x8 digits have pixels: no PCA to compare with
    assert metrics["shallow"]["pca_ratio"] is None
    lines = proc.stdout.splitlines()
    assert lines[-2] == (
        "held-out MSE / PCA's at each code size (below 1 beats PCA): "
        f"deep {metrics['deep']['pca_ratio']:.2f}, vae {metrics['vae']['pca_ratio']:.2f}"
    )
    assert lines[-1] == f"open {(out / 'report.html').resolve().as_uri()}"
    assert (out / "report.html").is_file()


def test_quiet_is_quiet_and_a_terminal_gets_the_bar(tmp_path):
    quiet = _aelab([*TRAIN, "--quiet", "--out", str(tmp_path / "quiet")])
    assert not re.search(r"epoch \d+/\d+", quiet.stderr)  # the data's line names no epoch
    assert "loss" not in quiet.stderr.split("wrote")[0]
    # stderr a terminal (a pseudo-terminal): tqdm's bar, no plain lines
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    try:
        proc = subprocess.run([sys.executable, "-m", "aelab", *TRAIN, "--out",
                               str(tmp_path / "tty")], stdout=subprocess.PIPE,
                              stderr=secondary, timeout=600)  # fmt: skip
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
    assert proc.returncode == 0
    text = shown.decode(errors="replace")
    assert "2/2" in text and "loss=" in text and not LINE.search(text)
    assert Path(tmp_path / "tty" / "model.safetensors").is_file()
