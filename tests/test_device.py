"""The machine a model runs on: device and precision choice, layouts, the CPU settings."""

from __future__ import annotations

import pytest
import torch

from aelab.models import MODELS, build_model
from aelab.training.config import TrainConfig
from aelab.training.recipes import resolve
from aelab.training.trainer import Trainer
from aelab.utils import device
from aelab.utils.device import (
    autocast,
    check_device,
    cpu_flags,
    fast_cpu,
    memory_format,
    native_bf16,
    resolve_device,
    resolve_precision,
)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device='cuda' is not available here"):
            resolve_device("cuda")


def test_native_bf16_is_read_from_the_cpu_flags():
    cpu = torch.device("cpu")
    avx2 = frozenset({"avx", "avx2", "fma", "avx512f"})
    assert not native_bf16(cpu, avx2)
    if torch.backends.mkldnn.is_available():
        assert native_bf16(cpu, avx2 | {"avx512_bf16"}) and native_bf16(cpu, {"amx_bf16"})
    assert not native_bf16(torch.device("meta"), frozenset({"avx512_bf16"}))
    flags = cpu_flags()  # this machine's, as lscpu shows them (empty off Linux)
    assert isinstance(flags, frozenset) and (not flags or "fpu" in flags or "fp" in flags)


def test_auto_is_bf16_only_where_native_and_shown_for_the_recipe(monkeypatch):
    cpu = torch.device("cpu")
    shown = [name for name, recipe in MODELS.items() if recipe.autocast_bf16]
    assert shown and "vqvae" not in shown  # bf16 distances pick the wrong codes
    not_shown = next(name for name in MODELS if name not in shown)
    native = torch.backends.mkldnn.is_available()
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert resolve_precision("auto", cpu, shown=True) == ("bf16" if native else "fp32")
    assert resolve_precision("auto", cpu) == "fp32"  # nothing shown: float32
    # a recipe's "auto" is decided when the run is configured: config.json says which
    for name, expected in [(shown[0], "bf16" if native else "fp32"), (not_shown, "fp32")]:
        assert resolve(name, (1, 16, 16), train={"device": "cpu"}).train.precision == expected
    assert resolve(shown[0], (1, 16, 16), train={"precision": "fp32"}).train.precision == "fp32"
    assert Trainer(build_model("deep", (1, 8, 8)), TrainConfig(device="cpu")).precision == "fp32"
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2"}))  # no native bf16
    assert resolve_precision("auto", cpu, shown=True) == "fp32"
    assert resolve(shown[0], (1, 16, 16), train={"device": "cpu"}).train.precision == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"  # asked for: always


def test_precision_and_autocast():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    fp16 = r"precision='fp16' is not valid; did you mean 'bf16'\? allowed: auto, fp32"
    with pytest.raises(ValueError, match=fp16):
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


def test_a_trainer_records_the_precision_it_trained_in(tmp_path):
    from aelab.runs.checkpoint import load_state, save_state

    x = torch.rand(16, 1, 8, 8)
    trainer = Trainer(build_model("deep", (1, 8, 8)), TrainConfig(epochs=1, precision="bf16"))
    trainer.fit(x, progress=False)
    save_state(tmp_path, trainer.state_dict())
    assert load_state(tmp_path)["precision"] == "bf16"
