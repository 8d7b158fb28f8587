"""A busy machine: each model trained by aelab and by the Keras port while 0, 1 and 2 other
processes keep the CPU busy (``python -c "while 1: pass"``), as on a shared machine.

aelab trains as a user starts it, ``aelab train NAME`` in a fresh process: its OpenMP threads
spin only briefly (:mod:`aelab.utils.openmp`), their number follows the cores free
(:mod:`aelab.utils.threads`) and the convolution kernels are tuned where the run is long enough
(``aelab.training.kernels``). It trains once more with libgomp's default spinning wait
(``GOMP_SPINCOUNT=300000``: what aelab did before), on the Keras port's split (Olivetti people
0-35 with mirrors) and schedule. Each process's seconds per epoch (the median after the first),
the thread count of each epoch and the CPU time it used are recorded, with the load average
before it started. The two aelab runs may differ in the last bits (thread counts and kernels
are chosen by measuring), so ``same_losses`` is recorded, not required.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .keras import run_keras
from .machine import log, typical_epoch
from .models import scaled_epochs

BUSY_LOOPS = (0, 1, 2)
BUSY_LOOP = "while 1: pass"
# libgomp's own spin count when OMP_WAIT_POLICY is unset (its manual, GOMP_SPINCOUNT)
SPINNING = {"GOMP_SPINCOUNT": "300000"}
_WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "AELAB_THREADS")


@contextlib.contextmanager
def busy_loops(n: int) -> Iterator[list[int]]:
    """``n`` processes that each keep one core busy, ended (and reaped) on leaving."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(n)]
    try:
        time.sleep(1.0 if n else 0.0)  # running before the measurement starts
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _user_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell would give: without the wait policy this process (which
    imported aelab) set or a thread count the caller fixed, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _WAIT_SETTINGS}
    return env | extra


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_aelab(
    name: str, epochs: int, workdir: Path, data_home: str | None, env: dict[str, str]
) -> dict[str, Any]:
    """``aelab train NAME`` in its own process: s/epoch from its history, its CPU seconds."""
    out = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir)) / "run"
    cmd = [sys.executable, "-m", "aelab", "train", name, "--data", "olivetti",
           "--holdout-people", "4", "--mirror", "--epochs", str(epochs), "--seed", "0",
           "--quiet", "--out", str(out)]  # fmt: skip
    if data_home is not None:
        cmd += ["--data-home", data_home]
    cpu, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if proc.returncode != 0:
        raise RuntimeError(f"aelab train {name} failed: {proc.stderr.strip()[-500:]}")
    history = json.loads((out / "history.json").read_text())
    seconds = [h["seconds"] for h in history]
    return {
        "seconds_per_epoch": typical_epoch(seconds),
        "epoch_seconds": seconds,
        "threads": [h.get("threads") for h in history],
        "train_seconds": sum(seconds),
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "losses": [h["loss"] for h in history],
        "final_loss": history[-1]["loss"],
    }


def _keras(keras: dict[str, str], name: str, scale: float, mat: str) -> dict[str, Any]:
    cpu, start = _children_cpu(), time.perf_counter()
    result = run_keras(keras["python"], keras["script"], scale=scale, mat=mat, models=[name])
    row = result["models"][name]
    return {
        "seconds_per_epoch": row["seconds_per_epoch"],
        "fit_seconds": row["fit_seconds"],
        "wall_seconds": time.perf_counter() - start,
        "cpu_seconds": _children_cpu() - cpu,
        "final_loss": row["final_loss"],
    }


def contention(
    models: Sequence[str],
    *,
    scale: float,
    workdir: Path,
    mat: str,
    data_home: str | None = None,
    keras: dict[str, str] | None = None,
    busy: Sequence[int] = BUSY_LOOPS,
) -> dict[str, Any]:
    """Per model and number of busy loops: aelab (as a user runs it), aelab with libgomp's default
    spinning wait and (with ``keras``: ``{"python", "script"}``) the Keras port, one right after
    the other."""
    result: dict[str, Any] = {
        "busy_loops": list(busy),
        "epochs_scale": scale,
        "keras": keras is not None,
        "models": {},
    }
    if keras is None:
        result["note"] = "the Keras port was not run (no --keras-python/--keras-script)"
    for name in models:
        epochs = scaled_epochs(name, scale)
        rows: dict[str, Any] = {}
        for n in busy:
            with busy_loops(n):
                row: dict[str, Any] = {"epochs": epochs, "load_average": os.getloadavg()}
                row["aelab"] = run_aelab(name, epochs, workdir, data_home, _user_env())
                row["aelab_spinning"] = run_aelab(
                    name, epochs, workdir, data_home, _user_env(**SPINNING)
                )
                if keras is not None:
                    row["keras"] = _keras(keras, name, scale, mat)
            ours, spinning = row["aelab"], row["aelab_spinning"]
            row["same_losses"] = ours["losses"] == spinning["losses"]
            row["spinning_over_passive"] = spinning["seconds_per_epoch"] / ours["seconds_per_epoch"]
            line = (
                f"{name}, {n} busy: aelab {ours['seconds_per_epoch']:.3f} s/epoch "
                f"({ours['cpu_seconds']:.0f} s CPU), spinning "
                f"{spinning['seconds_per_epoch']:.3f} ({spinning['cpu_seconds']:.0f} s CPU)"
            )
            if keras is not None:
                row["speedup_over_keras"] = (
                    row["keras"]["seconds_per_epoch"] / ours["seconds_per_epoch"]
                )
                line += (
                    f", Keras {row['keras']['seconds_per_epoch']:.3f}: "
                    f"{row['speedup_over_keras']:.2f}x"
                )
            log(line + f"; threads {ours['threads']}")
            rows[str(n)] = row
        result["models"][name] = rows
    return result
