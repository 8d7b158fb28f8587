"""The machine a model runs on: device and precision choice, layouts, the CPU settings."""

from __future__ import annotations

import pytest
import torch

from aelab.device import (
    autocast,
    check_device,
    fast_cpu,
    memory_format,
    resolve_device,
    resolve_precision,
)
from aelab.models import build_model


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device='cuda' is not available here"):
            resolve_device("cuda")


def test_precision_and_autocast():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match=r"precision='fp16' is not valid; allowed: auto, fp32"):
        resolve_precision("fp16", cpu)
    x = torch.rand(2, 3)
    with autocast("bf16", cpu):
        assert (x @ x.T).dtype == torch.bfloat16
    with autocast("fp32", cpu):
        assert (x @ x.T).dtype == torch.float32
    with pytest.raises(ValueError, match=r"device='tpu' is not valid; allowed: auto, cpu"):
        check_device("tpu")
    check_device("cuda:1")  # a name, checked for availability only when resolved


def test_layouts_and_cpu_settings_are_restored():
    assert memory_format(build_model("conv", (1, 16, 16))) == torch.channels_last
    assert memory_format(build_model("deep", (1, 16, 16))) == torch.contiguous_format
    before = torch.set_flush_denormal(False)
    try:
        tiny = torch.tensor([1e-40])
        with fast_cpu(torch.device("cpu")):
            assert (tiny * 1.0).item() == 0.0  # flushed
        assert (tiny * 1.0).item() != 0.0  # PyTorch's default again
    finally:
        torch.set_flush_denormal(before)
