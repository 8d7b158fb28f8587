"""aelab's CPU threads spin only briefly (``aelab.utils.openmp``): OpenMP's wait setting is made
before torch loads the runtime, in a real fresh process, unless the user chose one or torch came
first. Whether it is faster is the benchmark's business (``aelab bench --sections contention``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPORT = (
    "import os; "
    "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'), _openmp.WAITING)"
)
LINUX = sys.platform.startswith("linux")


def _fresh(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=clean | env, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize(
    ("first", "env", "expected"),
    [
        # set before torch loads OpenMP: a short spin where threads follow the free cores (Linux)
        ("import aelab", {}, "None 3000 short spin" if LINUX else "PASSIVE None passive"),
        ("import aelab", {"OMP_WAIT_POLICY": "active"}, "active None None"),  # the user's choice
        ("import aelab", {"GOMP_SPINCOUNT": "1000"}, "None 1000 None"),
        ("import torch, aelab", {}, "None None None"),  # too late: the runtime is loaded
    ],
    ids=["aelab", "user-policy", "user-spincount", "torch-first"],
)
def test_threads_spin_briefly_unless_the_user_chose(first, env, expected):
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
        "        import os\n"
        "        print('torch loaded with', os.environ.get('GOMP_SPINCOUNT'),\n"
        "              os.environ.get('OMP_WAIT_POLICY'))\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = spy\n"
        "import aelab\n"
        "aelab.Trainer\n"  # the public API, and torch with it, load on first use
    )
    expected = "torch loaded with 3000 None" if LINUX else "torch loaded with None PASSIVE"
    assert _fresh(code).splitlines()[0] == expected
