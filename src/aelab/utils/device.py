"""The machine a model runs on: device and precision choice, memory layout, and the CPU settings
that make training fast (denormal flushing, keeping freed memory).

Inference imports this module, never the training loop. Nothing happens at import: devices are
probed only when :func:`resolve_device` is called.
"""

from __future__ import annotations

import contextlib
import ctypes
import platform
import sys

import torch
from torch import nn

from aelab.utils.choices import did_you_mean, not_one_of

DEVICES = ("auto", "cpu", "cuda", "mps")
# "auto" is bfloat16 autocast where the device computes in bfloat16 natively (native_bf16) and
# the model has been shown, over 3 seeds of the notebook's full schedule, to leave a mean held-out
# MSE no worse than float32's by more than float32's own seed-to-seed standard deviation
# (Recipe.autocast_bf16, analysis.spread.within_spread, benchmarks/README.md); float32
# elsewhere: on CPUs without native bfloat16 it is many times slower. A recipe's "auto" is
# decided when the run is configured (aelab.recipes.resolve), so config.json records what the
# run trains in.
PRECISIONS = ("auto", "fp32", "bf16")
# what a precision or a device is often called, where spelling would suggest the wrong one
PRECISION_ALIASES = {"fp16": "bf16", "half": "bf16", "float16": "bf16", "bfloat16": "bf16",
                     "float32": "fp32", "float": "fp32", "fp8": None}  # fmt: skip
DEVICE_ALIASES = {"gpu": "cuda", "tpu": None, "npu": None, "xpu": None}
# CPU flags (Linux /proc/cpuinfo names) of instructions that compute in bfloat16
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def check_device(device: str) -> None:
    """Raise unless ``device`` is one of :data:`DEVICES` or ``cuda:N`` (N a device index)."""
    if isinstance(device, torch.device):
        device = str(device)
    index = device[5:] if isinstance(device, str) and device.startswith("cuda:") else None
    if device not in DEVICES and not (index is not None and index.isdigit()):
        hint = did_you_mean(device, DEVICES, aliases=DEVICE_ALIASES)
        raise ValueError(
            f"device={device!r} is not valid; {hint}allowed: {', '.join(DEVICES)} or cuda:N (N a "
            "GPU's index)"
        )


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; an unknown name or an unavailable
    choice is an error."""
    check_device(device)
    device = str(device)
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device[5:]) if ":" in device else 0
        if index >= count:
            have = f"{count} GPU(s)" if count else "no GPU"
            raise ValueError(
                f"device={device!r} is not available here ({have}); allowed: auto, cpu"
            )
    if device == "mps" and not (torch.backends.mps.is_available()):
        raise ValueError("device='mps' is not available here; allowed: auto, cpu")
    return torch.device(device)


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux names them (``/proc/cpuinfo``: ``flags`` on x86,
    ``Features`` on Arm); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device, flags: frozenset[str] | None = None) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CPU with AVX512_BF16 or AMX (oneDNN
    present), or a CUDA GPU of compute capability 8.0 or more. ``flags`` (default
    :func:`cpu_flags`) are the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    return any(f in (cpu_flags() if flags is None else flags) for f in _BF16_CPU_FLAGS)


def resolve_precision(precision: str, device: torch.device, shown: bool = False) -> str:
    """``fp32`` or ``bf16`` for ``precision`` on ``device``. ``auto`` is ``bf16`` where the model
    was ``shown`` to keep its loss in bfloat16 (a recipe's ``autocast_bf16``) and the device has
    :func:`native_bf16`; ``fp32`` otherwise."""
    if precision not in PRECISIONS:
        raise not_one_of("precision", precision, PRECISIONS, aliases=PRECISION_ALIASES)
    if precision != "auto":
        return precision
    return "bf16" if shown and native_bf16(device) else "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast when ``precision`` is ``bf16``; otherwise nothing changes."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def memory_format(model: nn.Module) -> torch.memory_format:
    """Channels-last for convolutional models, the default layout otherwise.

    The notebook's conv model at 64x64 trains faster per epoch in channels-last on a CPU
    (benchmarks/README.md); dense models are unaffected. Training and inference use the same
    layout so that a reloaded model gives bit-identical outputs.
    """
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return torch.channels_last
    return torch.contiguous_format


def rng_devices(device: torch.device) -> list:
    """The devices whose random state ``torch.random.fork_rng`` must save for ``device``."""
    return [device] if device.type == "cuda" else []


@contextlib.contextmanager
def flush_denormals():
    """Treat denormal floats as zero while training on a CPU.

    Saturated sigmoids give tiny gradients whose squares (in Adam's and RMSprop's state) fall
    below float32's normal range, and arithmetic on such denormals is many times slower on x86
    CPUs (benchmarks/README.md). TensorFlow flushes them by default. The setting is restored (to
    PyTorch's default, off) afterwards.
    """
    changed = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if changed:
            torch.set_flush_denormal(False)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}


def _glibc():
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") else None
    except OSError:  # pragma: no cover - a Linux without a loadable C library
        return None


@contextlib.contextmanager
def keep_freed_memory(device: torch.device):
    """While training on a CPU with glibc, keep freed memory for the next step.

    glibc gives every allocation above 32 MiB its own ``mmap`` and returns it to the system when
    freed; the next step's activations then fault in fresh zeroed pages (for the notebook's conv
    model at batch 80, about 100,000 page faults a step and a quarter of its time in the
    system). With ``mmap`` off for large blocks and no trimming, freed blocks are reused, as
    TensorFlow's allocator keeps its memory. glibc's defaults are restored afterwards (and the
    kept memory is returned at the next free).
    """
    libc = _glibc() if device.type == "cpu" else None
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # mallopt takes a C int: the largest one
    try:
        yield
    finally:
        for param, value in _GLIBC_DEFAULTS.items():
            libc.mallopt(param, value)


@contextlib.contextmanager
def fast_cpu(device: torch.device):
    """Both CPU settings training runs under: denormals flushed, freed memory kept."""
    with flush_denormals(), keep_freed_memory(device):
        yield
