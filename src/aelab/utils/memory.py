"""Will it fit? The memory a model and a batch need, known before anything is allocated.

A model is built on PyTorch's ``meta`` device (shapes without storage) and run once on a meta
batch, so a ``latent_dim`` of a billion or a 100,000-pixel-wide image is refused in milliseconds
with the memory it would need, instead of failing deep inside an allocation (or swapping for an
hour).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

GIB = 2**30
# Bytes per parameter while training: the weight, its gradient and up to two optimizer moments
# (Adam), all float32.
TRAINING_BYTES_PER_PARAMETER = 16
# Activations are kept for the backward pass and their gradients made during it.
ACTIVATION_FACTOR = 2


def available_bytes(device: torch.device) -> int:
    """Memory a new allocation can take on ``device``: free GPU memory, or the system's
    ``MemAvailable`` (all physical memory where that cannot be read)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not a POSIX system
        return 2**63


def footprint(cls: type[nn.Module], config, batch_size: int) -> tuple[int, int]:
    """``(parameters, activation values)`` of model ``cls(config)`` on a batch of
    ``batch_size``, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        model = cls(config)
        parameters = sum(p.numel() for p in model.parameters())
        outputs: list[int] = []
        hooks = [
            m.register_forward_hook(lambda _m, _i, out: outputs.append(_numel(out)))
            for m in model.modules()
            if not list(m.children())
        ]
        try:
            model(torch.empty(batch_size, *config.input_shape))
        finally:
            for h in hooks:
                h.remove()
    return parameters, sum(outputs)


def _numel(out) -> int:
    if torch.is_tensor(out):
        return out.numel()
    if isinstance(out, (tuple, list)):
        return sum(_numel(o) for o in out)
    return 0


def check_fits(cls: type[nn.Module], config, batch_size: int, device: torch.device) -> None:
    """Raise, naming the sizes and the memory, when training ``cls(config)`` in batches of
    ``batch_size`` could not fit in the memory ``device`` has free."""
    parameters, activations = footprint(cls, config, batch_size)
    need = TRAINING_BYTES_PER_PARAMETER * parameters + ACTIVATION_FACTOR * 4 * activations
    have = available_bytes(device)
    if need > have:
        sizes = ", ".join(
            f"{k}={getattr(config, k)!r}"
            for k in ("input_shape", "latent_dim", "hidden", "channels")
            if hasattr(config, k)
        )
        raise ValueError(
            f"the model ({sizes}) would need {need / GIB:,.1f} GiB to train in batches of "
            f"{batch_size} ({parameters:,} parameters with their gradients and optimizer "
            f"state, {activations:,} activations), more than the {have / GIB:,.1f} GiB "
            f"available on {device.type}; choose a smaller latent_dim, hidden, channels, "
            "image_size or batch_size"
        )


def check_loadable(cls: type[nn.Module], config, source: str) -> None:
    """Raise, naming ``source`` and the sizes, when the weights of ``cls(config)`` (with one
    image's activations) would not fit in the memory the CPU has free: a config edited to an
    absurd size is refused before anything is allocated."""
    try:
        parameters, activations = footprint(cls, config, 1)
    except (RuntimeError, ValueError, TypeError) as e:
        reason = " ".join(str(e).split())[:200]
        raise ValueError(f"{source}: the model it describes cannot be built ({reason})") from None
    need, have = 4 * (parameters + activations), available_bytes(torch.device("cpu"))
    if need > have:
        raise ValueError(
            f"{source}: the model it describes has {parameters:,} parameters, {need / GIB:,.1f} "
            f"GiB, more than the {have / GIB:,.1f} GiB of memory available; it is not a model "
            "this machine can load"
        )


__all__ = ["available_bytes", "check_fits", "check_loadable", "footprint"]
