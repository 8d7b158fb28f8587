"""The machine a benchmark ran on, and its limit: the matrix-multiply peak in each precision."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# The CPU flags that decide which kernels run fast: vector widths, bfloat16 and matrix units.
_SPEED_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_tile",
    "amx_int8",
    "asimd",
    "sve",
    "bf16",
)


def cpu_flags() -> list[str]:
    """The flags of :data:`_SPEED_FLAGS` this CPU reports (:func:`aelab.device.cpu_flags`)."""
    from aelab.utils.device import cpu_flags as all_flags

    have = all_flags()
    return [f for f in _SPEED_FLAGS if f in have]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict[str, Any]:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": device,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        # other work on the machine when the run started (1, 5 and 15 minutes)
        "load_average": os.getloadavg(),
        "openmp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "openmp_spin_count": os.environ.get("GOMP_SPINCOUNT"),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def typical_epoch(seconds: Sequence[float]) -> float:
    """Seconds per epoch: the median of all epochs but the first (start-up), or the only one."""
    return statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]


def sync(device: str) -> None:
    """Wait for the GPU's queued work (nothing on a CPU)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def matmul_peak(precision: str, device: str = "cpu", seconds: float = 1.0) -> dict[str, Any]:
    """The best FLOP/s of a square ``torch.mm`` in ``precision``: the size grows until one
    product takes 0.2 s (or reaches 4096, 8192 on a GPU), then that size is repeated for
    ``seconds`` and the fastest repeat counts."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    largest = 8192 if device.startswith("cuda") else 4096
    n, best = 256, 0.0
    while True:
        a = torch.rand(n, n, device=device, dtype=dtype)
        b = torch.rand(n, n, device=device, dtype=dtype)
        torch.mm(a, b)  # warm-up
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        once = time.perf_counter() - start
        if once > 0.2 or n >= largest:
            break
        n *= 2
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        elapsed = time.perf_counter() - start
        best = max(best, 2 * n**3 / elapsed)
        if time.perf_counter() > deadline:
            break
    return {"precision": precision, "n": n, "flops_per_s": best}
