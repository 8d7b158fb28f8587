"""``aelab run`` end to end, as a user runs it, in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .machine import log


def timed_process(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd``: its wall time, exit code, output and peak resident memory (the process's own,
    or its largest child's when that is larger, e.g. a data loader worker)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    return {
        "command": " ".join(cmd),
        "wall_seconds": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux reports KiB
        "exit_code": proc.returncode,
        "stdout": stdout,
        "stderr_tail": stderr[-2000:],
    }


END_TO_END = {
    "quick": ["--schedule", "quick"],
    "seed": ["--schedule", "seed", "--data", "olivetti", "--mirror"],
}


def end_to_end(
    data_home: str | None,
    device: str,
    workdir: Path,
    schedules: Sequence[str] = tuple(END_TO_END),
) -> dict[str, Any]:
    """``aelab run`` as a user runs it: the quick schedule on the default data set, and the
    notebook's full schedule (``seed``) on Olivetti with mirrors."""
    results = {}
    for key in schedules:
        args = END_TO_END[key]
        cmd = [sys.executable, "-m", "aelab", "run", *args, "--out", str(workdir / key)]
        cmd += ["--device", device, "--quiet"]
        if data_home is not None:
            cmd += ["--data-home", data_home]
        log(f"end-to-end: {' '.join(cmd[1:])}")
        result = timed_process(cmd)
        if result["exit_code"] != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} failed: {result['stderr_tail'][-500:]}")
        result["command"] = portable(cmd, workdir, data_home)
        metrics = json.loads((workdir / key / "metrics.json").read_text())
        result["models"] = {
            name: {k: m.get(k) for k in ("epochs", "train_seconds", "final_loss")}
            for name, m in metrics.get("models", {}).items()
        }
        del result["stdout"], result["stderr_tail"]
        results[key] = result
        log(f"  {result['wall_seconds']:.0f} s")
    return results


def portable(cmd: Sequence[str], *folders: str | os.PathLike | None) -> str:
    """``cmd`` as text without this machine's paths: ``python`` for the interpreter, paths under
    the current folder relative to it, and ``folders`` (temporary places) as ``DIR``."""
    words = []
    for word in cmd:
        word = "python" if word == sys.executable else str(word)
        for folder in folders:
            if folder is not None and word.startswith(str(folder)):
                word = "DIR" + word[len(str(folder)) :]
        if os.path.isabs(word) and os.path.exists(word):
            rel = os.path.relpath(word)
            word = rel if not rel.startswith(".." + os.sep + "..") else os.path.basename(word)
        words.append(word)
    return " ".join(words)
