"""``kill -9`` at any moment, resumed: the run ends with the weights of a run never interrupted,
bit for bit (CPU, PyTorch's own convolution kernels). Real processes, real signals.

A kill between the files of a checkpoint is made certain, not left to chance: the process under
test announces each checkpoint file it has written and pauses, and the test kills it there.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from aelab.runs.run import load_run
from aelab.runs.training import read_state

pytestmark = pytest.mark.slow  # trains, kills, builds or starts a browser

# The command under test, with write_bytes announcing (and pausing after) every file written into
# a checkpoint that is being built; nothing else of aelab is changed.
DRIVER = textwrap.dedent("""
    import sys, time
    import aelab.utils.files as files

    original = files.write_bytes

    def announced(path, data):
        digest = original(path, data)
        if ".aelab-tmp-" in path.parent.name and path.parent.name.startswith(".checkpoint-"):
            print("WROTE", path.parent.parent.name, path.parent.name, path.name, flush=True)
            time.sleep(0.15)
        return digest

    files.write_bytes = announced
    from aelab.cli import main
    raise SystemExit(main(sys.argv[1:]))
""")
TRAIN = ["train", "deep", "--data", "digits", "--batch-size", "128", "--seed", "5",
         "--conv-kernels", "default", "--checkpoint-every", "1", "--quiet"]  # fmt: skip


def _start(args):
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_after(proc, n_files):
    """Kill ``proc`` with SIGKILL right after it has written ``n_files`` checkpoint files (or
    when it ends first); returns its exit code."""
    seen = 0
    for line in proc.stdout:
        if line.startswith("WROTE"):
            seen += 1
            if seen >= n_files:
                proc.send_signal(signal.SIGKILL)
                break
    return proc.wait(timeout=300)


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "aelab", *TRAIN, "--epochs", "6", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("n_files", [2, 4, 5, 6])  # 5 files a checkpoint: between them, after
def test_a_kill_inside_a_checkpoint_resumes_exactly(uninterrupted, tmp_path, n_files):
    out = tmp_path / "run"
    proc = _start([*TRAIN, "--epochs", "6", "--out", str(out)])
    assert _kill_after(proc, n_files) == -signal.SIGKILL
    state = read_state(out)  # whatever is in force is whole: every file matches its record
    done = 0 if state is None else state["epoch"]
    assert done == (0 if n_files <= 5 else 1)  # the second checkpoint was cut short
    assert not any(p.name.startswith("checkpoint-000002") for p in out.iterdir())
    resume = subprocess.run(
        [sys.executable, "-m", "aelab", "train", "deep", "--out", str(out), "--resume", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert resume.returncode == 0, resume.stderr
    assert _same(_weights(out), _weights(uninterrupted))
    a, b = load_run(out).history, load_run(uninterrupted).history
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert not [p for p in out.rglob("*") if ".aelab-tmp-" in p.name]  # leftovers removed


def test_a_chain_of_kills_at_random_moments_resumes_exactly(uninterrupted, tmp_path):
    rng = random.Random(0)
    out = tmp_path / "run"
    args = [*TRAIN, "--epochs", "6", "--out", str(out)]
    kills = 0
    for _ in range(20):
        proc = _start(args)
        code = _kill_after(proc, rng.randint(1, 9))
        if code == 0:
            break
        assert code == -signal.SIGKILL, proc.stderr.read()
        kills += 1
        args = ["train", "deep", "--out", str(out), "--resume", "--quiet"]
    else:
        pytest.fail("the run never finished")
    assert kills >= 3
    assert _same(_weights(out), _weights(uninterrupted))


def test_a_killed_workshop_resumes_and_keeps_the_models_it_finished(tmp_path):
    common = ["run", "--data", "digits", "--models", "shallow,vae", "--epochs", "4",
              "--conv-kernels", "default", "--quiet"]  # fmt: skip
    ref = tmp_path / "ref"
    proc = subprocess.run([sys.executable, "-m", "aelab", *common, "--out", str(ref)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "aelab", *common, "--out", str(out)],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    for line in proc.stderr:  # kill while the second model trains
        if line.startswith("shallow:"):
            time.sleep(0.3)
            os.kill(proc.pid, signal.SIGKILL)
            break
    assert proc.wait(timeout=300) == -signal.SIGKILL
    finished = (out / "shallow" / "model.safetensors").stat().st_mtime_ns
    assert not (out / "report.html").exists()
    again = subprocess.run([sys.executable, "-m", "aelab", *common, "--out", str(out)],
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 2  # the same command again: told to resume, nothing touched
    assert len(again.stderr.strip().splitlines()) == 1
    message = again.stderr.strip()
    assert "unfinished" in message and "--resume" in message
    assert message.index("--resume") < message.index("--overwrite")
    resumed = subprocess.run(
        [sys.executable, "-m", "aelab", "run", "--out", str(out), "--resume", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "shallow: already trained" in resumed.stderr
    assert (out / "shallow" / "model.safetensors").stat().st_mtime_ns == finished  # kept
    for name in ("shallow", "vae"):
        assert _same(_weights(out / name), _weights(ref / name))
    assert (out / "report.html").is_file()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_a_workshop_interrupted_inside_a_model_resumes_from_its_checkpoint(tmp_path, sig):
    """aelab run's models checkpoint by time (--checkpoint-seconds; a moment here, so every
    epoch): a kill or Ctrl-C while the second model writes its third checkpoint leaves its
    second in force, and --resume continues from there (its first two epochs kept as they were
    recorded) to the weights of a workshop never interrupted."""
    common = ["run", "--data", "digits", "--models", "shallow,vae", "--epochs", "6",
              "--conv-kernels", "default", "--checkpoint-seconds", "1e-9", "--quiet"]  # fmt: skip
    ref = tmp_path / "ref"
    proc = subprocess.run([sys.executable, "-m", "aelab", *common, "--out", str(ref)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "interrupted"
    proc = _start([*common, "--out", str(out)])
    for line in proc.stdout:  # WROTE model checkpoint-folder file
        _, model, folder, _ = line.split()
        if model == "vae" and folder.startswith(".checkpoint-000003"):
            proc.send_signal(sig)
            break
    assert proc.wait(timeout=300) == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    if sig == signal.SIGINT:
        assert f"stopped: shallow, vae (at epoch 2) kept in '{out}'" in proc.stderr.read()
    state = read_state(out / "vae")
    assert state["epoch"] == 2
    recorded = [r["seconds"] for r in state["history"]]
    resumed = subprocess.run(
        [sys.executable, "-m", "aelab", "run", "--out", str(out), "--resume", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "shallow: already trained" in resumed.stderr
    history = load_run(out / "vae").history
    assert [r["seconds"] for r in history[:2]] == recorded  # continued, not started again
    for name in ("shallow", "vae"):
        assert _same(_weights(out / name), _weights(ref / name))
        assert [r["loss"] for r in load_run(out / name).history] == [
            r["loss"] for r in load_run(ref / name).history
        ]
    assert (out / "report.html").is_file()
