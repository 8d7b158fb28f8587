"""Layers that keep their parameters' precision under autocast.

Under bfloat16 autocast every linear layer and convolution computes in bfloat16, whose 8-bit
mantissa rounds each value by up to 2^-9 of itself. The narrow code layers mind most: a code of
a few dozen units carries the whole image. Keeping the layers into and out of the code in float32
took the notebook's conv model from 1.26x to 1.08x float32's final loss after its full schedule in
bfloat16 (seed 0), at the same speed: they hold under 1% of its FLOPs (``benchmarks/README.md``).

The classes here are the PyTorch layers with the same parameters and state-dict keys
(``isinstance`` still holds) whose forward pass, when autocast is on, casts its input to the
weight's dtype and runs outside autocast; with autocast off they are the plain layers, bit for
bit. :mod:`aelab.kernels` keeps a full-precision convolution in its weight's dtype too.
"""

from __future__ import annotations

import contextlib
from typing import ClassVar

import torch
from torch import nn


def no_autocast(device: str) -> contextlib.AbstractContextManager:
    """Autocast off on ``device`` inside the block (the meta device, where :mod:`aelab.memory`
    counts, has no autocast to turn off)."""
    if torch.amp.is_autocast_available(device):
        return torch.autocast(device, enabled=False)
    return contextlib.nullcontext()


def autocast_on(device: str) -> bool:
    """Whether autocast is on for ``device`` (a device type: ``"cpu"``, ``"cuda"``)."""
    return torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)


class FullPrecision:
    """Mixin for a layer with a ``weight``: under autocast it runs in the weight's dtype."""

    full_precision: ClassVar[bool] = True

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        device = x.device.type
        if not autocast_on(device):
            return super().forward(x, *args, **kwargs)
        with no_autocast(device):
            return super().forward(x.to(self.weight.dtype), *args, **kwargs)


class FullPrecisionLinear(FullPrecision, nn.Linear):
    """:class:`torch.nn.Linear` in its weight's dtype under autocast (module docstring)."""


class FullPrecisionConvTranspose2d(FullPrecision, nn.ConvTranspose2d):
    """:class:`torch.nn.ConvTranspose2d` in its weight's dtype under autocast."""


def is_full_precision(module: nn.Module) -> bool:
    return getattr(module, "full_precision", False)


__all__ = [
    "FullPrecisionConvTranspose2d",
    "FullPrecisionLinear",
    "autocast_on",
    "is_full_precision",
    "no_autocast",
]
