"""Training in several processes: real ``torchrun`` launches on CPU (gloo), compared with one.

Two processes train the same weights as one (same global batch and seed), a run resumes with
another number of processes, only rank 0 writes, and a refused ``--out`` stops every rank alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from aelab.cli import main
from aelab.data import write_image_folder
from aelab.utils.distributed import agree, shard, world

pytestmark = pytest.mark.slow  # trains, kills, builds or starts a browser

SRC = Path(__file__).resolve().parents[1] / "src"  # the checkout under test, not an installed one

# 1,617 training digits = 8 batches of 202 and one of 1: the last leaves rank 1 without a sample.
# On the CPU (gloo) also where there is a GPU: two processes may not share one.
# float32: one process and two sum the same numbers in another order, which bf16 would round
TRAIN = ["train", "deep", "--data", "digits", "--batch-size", "202", "--seed", "3",
         "--device", "cpu", "--precision", "fp32", "--quiet"]  # fmt: skip

# Installed in every process of a launch: records each write under AELAB_WATCH, per rank.
WRITE_LOG = """
import atexit, os, sys

_watch = os.path.realpath(os.environ["AELAB_WATCH"])
_log = os.environ["AELAB_WATCH_LOG"] + "." + os.environ.get("RANK", "launcher")
_writes = []
_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_EVENTS = {"os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree", "tempfile.mkstemp"}

def _inside(path):
    try:
        path = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return path == _watch or path.startswith(_watch + os.sep)

def _hook(event, args):
    if event == "open" and isinstance(args[2], int) and args[2] & _FLAGS and _inside(args[0]):
        _writes.append(f"open {args[0]}")
    elif event in _EVENTS and any(_inside(a) for a in args[:2] if isinstance(a, (str, bytes))):
        _writes.append(f"{event} {args[0]}")

def _save():
    with open(_log, "w") as f:
        f.write("\\n".join(_writes))

sys.addaudithook(_hook)
atexit.register(_save)
"""


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def _launch(args: list[str], nproc: int, env: dict[str, str] | None = None):
    """``python -m aelab ARGS``, or the same under ``torchrun`` with ``nproc`` processes."""
    launcher = []
    if nproc > 1:  # --tee 3: every line of rank r prefixed [defaultr]:
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                    "--monitor-interval=1", "--tee=3"]  # fmt: skip
    command = [sys.executable, *launcher, "-m", "aelab", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env or _env(), timeout=300)


def _run_files(out: Path) -> tuple[dict[str, np.ndarray], list[dict]]:
    return load_file(out / "model.safetensors"), json.loads((out / "history.json").read_text())


def _assert_same_training(out: Path, reference: Path) -> None:
    (weights, history), (weights_ref, history_ref) = _run_files(out), _run_files(reference)
    assert weights.keys() == weights_ref.keys()
    for k in weights_ref:  # the same sums in another order: equal up to float rounding
        np.testing.assert_allclose(weights[k], weights_ref[k], rtol=0, atol=1e-5, err_msg=k)
    assert [r["epoch"] for r in history] == [r["epoch"] for r in history_ref]
    for key in ("loss", "heldout_loss"):
        np.testing.assert_allclose([r[key] for r in history], [r[key] for r in history_ref],
                                   rtol=1e-5, err_msg=key)  # fmt: skip


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    """The reference: four epochs in one process."""
    out = tmp_path_factory.mktemp("one") / "run"
    proc = _launch([*TRAIN, "--epochs", "4", "--out", str(out)], nproc=1)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> tuple[Path, Path]:
    """The same in two processes, every write under the run directory recorded per rank."""
    tmp = tmp_path_factory.mktemp("two")
    out, hooks = tmp / "run", tmp / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(WRITE_LOG)
    env = _env(AELAB_WATCH=str(out), AELAB_WATCH_LOG=str(tmp / "writes"))
    env["PYTHONPATH"] = os.pathsep.join((str(hooks), env["PYTHONPATH"]))
    proc = _launch([*TRAIN, "--epochs", "4", "--out", str(out)], nproc=2, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 processes" in proc.stdout + proc.stderr
    return out, tmp


def test_two_processes_train_the_weights_of_one(one_process, two_processes):
    out, _ = two_processes
    _assert_same_training(out, one_process)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one_process.iterdir())
    config, config_ref = (json.loads((d / "config.json").read_text()) for d in (out, one_process))
    assert config["train"] == config_ref["train"]  # batch_size is the global batch


def test_only_rank_0_writes(two_processes):
    _, tmp = two_processes
    writes = {r: (tmp / f"writes.{r}").read_text().splitlines() for r in (0, 1, "launcher")}
    assert any("config.json" in w for w in writes[0])  # the recorder works
    assert any("model.safetensors" in w for w in writes[0])
    assert writes[1] == [] and writes["launcher"] == [], writes


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_resume_with_another_number_of_processes(first, then, one_process, tmp_path, capsys):
    """Two epochs in ``first`` processes, two more in ``then``: the same as one process."""
    out = tmp_path / "run"
    for n_procs, epochs, resume in ((first, "2", []), (then, "4", ["--resume"])):
        args = [*TRAIN, "--epochs", epochs, "--out", str(out), *resume]
        if n_procs == 1:  # in this process: the same command, without a second start-up
            assert main(args) == 0, capsys.readouterr().err
        else:
            proc = _launch(args, nproc=n_procs)
            assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(json.loads((out / "history.json").read_text())) == 4
    _assert_same_training(out, one_process)


def test_a_refused_out_stops_every_rank_with_the_same_line(two_processes):
    out, _ = two_processes
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    proc = _launch([*TRAIN, "--epochs", "1", "--out", str(out)], nproc=2)
    assert proc.returncode != 0
    expected = f"aelab train: error: --out {out} already holds files; pass --overwrite"
    for r in (0, 1):
        lines = [s for s in proc.stdout.splitlines() + proc.stderr.splitlines()
                 if s.startswith(f"[default{r}]:")]  # fmt: skip
        assert len(lines) == 1 and lines[0].startswith(f"[default{r}]:{expected}"), lines
    # the first rank to finish exits with 2; torchrun may stop the other before it has exited
    assert "exitcode  : 2" in proc.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 202])
@pytest.mark.parametrize("n_procs", [1, 2, 3, 5])
def test_shard_weights_average_to_the_gradient_of_the_batch(n, n_procs):
    torch.manual_seed(n)
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(n, 4)

    def grad(rows: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
        layer.zero_grad()
        (layer(x[rows]).square().mean() * weight).backward()
        return layer.weight.grad.clone()

    batch = torch.arange(n)
    parts = [shard(batch, n_procs, r) for r in range(n_procs)]
    assert torch.equal(torch.cat([rows for rows, _, size in parts if size]), batch)
    assert sum(size for _, _, size in parts) == n
    assert all(len(rows) == 1 and weight == 0 for rows, weight, size in parts if size == 0)
    ddp_average = sum(grad(rows, weight) for rows, weight, _ in parts) / n_procs
    torch.testing.assert_close(ddp_average, grad(batch), rtol=1e-5, atol=1e-7)


def test_helpers_work_in_one_process():
    assert world() == 1
    assert agree(lambda: 42) == 42
    with pytest.raises(ValueError, match="as is"):
        agree(lambda: int("as is"))


def test_commands_that_do_not_train_refuse_torchrun(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["report", str(tmp_path)]) == 2
    assert "aelab report runs in one process; start it without torchrun" in capsys.readouterr().err


def test_streamed_folder_in_two_processes_trains_the_weights_of_one(tmp_path):
    """--stream under torchrun: a DistributedSampler shards the folder, DDP averages."""
    folder = write_image_folder(tmp_path / "images", 96, image_size=8, n_classes=3)
    args = ["train", "deep", "--data", str(folder), "--stream", "--holdout", "0.25",
            "--no-shuffle", "--batch-size", "16", "--epochs", "2", "--device", "cpu",
            "--precision", "fp32", "--quiet"]  # fmt: skip
    for nproc in (1, 2):
        proc = _launch([*args, "--out", str(tmp_path / f"run{nproc}")], nproc=nproc)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # without shuffling, the two shards of each batch are the batch one process takes
    _assert_same_training(tmp_path / "run2", tmp_path / "run1")
