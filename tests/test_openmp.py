"""aelab's CPU threads wait passively (``aelab.utils.openmp``): OpenMP's wait policy is set
before torch loads the runtime, in a real fresh process, unless the user chose one or torch came
first. Whether it is faster is the benchmark's business (``aelab bench --sections contention``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPORT = "import os, sys; print(os.environ.get('OMP_WAIT_POLICY'), _openmp.PASSIVE)"


def _fresh(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=clean | env, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize(
    ("first", "env", "expected"),
    [
        ("import aelab", {}, "PASSIVE True"),  # set before torch loads OpenMP
        ("import aelab", {"OMP_WAIT_POLICY": "active"}, "active False"),  # the user's choice
        ("import aelab", {"GOMP_SPINCOUNT": "1000"}, "None False"),
        ("import torch, aelab", {}, "None False"),  # too late: the runtime is loaded
    ],
    ids=["aelab", "user-policy", "user-spincount", "torch-first"],
)
def test_threads_wait_passively_unless_the_user_chose(first, env, expected):
    code = f"{first}; from aelab.utils import openmp as _openmp; {REPORT}"
    assert _fresh(code, **env) == expected


@pytest.mark.slow  # a fresh interpreter importing torch and aelab several times
def test_the_policy_is_set_before_torch_is_imported():
    """Nothing aelab imports before ``aelab.utils.openmp`` loads torch."""
    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def spy(name, *a, **k):\n"
        "    if name.split('.')[0] == 'torch' and 'torch' not in sys.modules:\n"
        "        import os; print('torch loaded with', os.environ.get('OMP_WAIT_POLICY'))\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = spy\n"
        "import aelab\n"
        "aelab.Trainer\n"  # the public API, and torch with it, load on first use
    )
    assert _fresh(code).splitlines()[0] == "torch loaded with PASSIVE"
