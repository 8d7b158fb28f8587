"""Convolution kernels per layer and per pass: the same numbers in every backend, the backend
asked for really runs, tuning leaves the model alone, and a run keeps the kernels it chose."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from aelab.models import build_model
from aelab.runs.run import DataSpec
from aelab.runs.training import train_run
from aelab.training import kernels
from aelab.training import trainer as train
from aelab.training.config import TrainConfig
from aelab.training.kernels import ConvKernels
from aelab.training.trainer import Trainer

COMBINATIONS = list(itertools.product(kernels.KERNELS, repeat=3))


def _conv_model(seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model("conv", (1, 24, 24), channels=(4, 8), latent_dim=6)


def _conv_names(model):
    return [name for name, m in model.named_modules() if kernels.supported(m)]


def _loss_and_grads(model, x, choices, bf16=False):
    model.zero_grad(set_to_none=True)
    with kernels.use(model, choices), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        out = model(x, x)
    out.loss.backward()
    return out.x_hat.detach(), [p.grad.clone() for p in model.parameters()]


def _choices(model, combination):
    """``combination`` for each convolution; an ordinary one runs its backend directly."""
    ordinary = tuple(k.removesuffix(kernels.ADJOINT) for k in combination)
    return {
        name: combination if isinstance(model.get_submodule(name), nn.ConvTranspose2d) else ordinary
        for name in _conv_names(model)
    }


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("combination", COMBINATIONS, ids="-".join)
def test_every_backend_gives_pytorchs_output_and_gradients(combination, layout):
    model = _conv_model().to(memory_format=layout)
    x = torch.rand(5, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=layout)
    expected_out, expected_grads = _loss_and_grads(model, x, {})
    out, grads = _loss_and_grads(model, x, _choices(model, combination))
    torch.testing.assert_close(out, expected_out, rtol=1e-4, atol=1e-6)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kernel", ["onednn", "onednn-adjoint"])
def test_under_bf16_autocast_the_kernels_compute_in_bf16_as_autocast_does(kernel):
    model = _conv_model().to(memory_format=torch.channels_last)
    x = torch.rand(5, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    expected_out, expected_grads = _loss_and_grads(model, x, {}, bf16=True)
    fp32_out, _ = _loss_and_grads(model, x, {})
    out, grads = _loss_and_grads(model, x, _choices(model, (kernel,) * 3), bf16=True)
    assert out.dtype == expected_out.dtype == torch.bfloat16
    assert all(g.dtype == torch.float32 for g in grads)  # the weights stay float32
    # bfloat16 keeps 8 bits: the same to a few of its steps, and far from exact float32
    torch.testing.assert_close(out.float(), expected_out.float(), rtol=0, atol=2e-2)
    assert (expected_out.float() - fp32_out).abs().max() > 1e-5
    for got, want in zip(grads, expected_grads, strict=True):
        scale = want.abs().max().clamp_min(1e-12)
        assert (got - want).abs().max() / scale < 5e-2


def test_a_transposed_convolution_runs_as_the_adjoint_of_a_convolution():
    up = nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=1, bias=True)
    model = nn.Sequential(up)
    x = torch.rand(2, 3, 7, 7, requires_grad=True)
    expected = up(x)
    expected_grads = torch.autograd.grad(expected.square().sum(), (x, up.weight, up.bias))
    adjoint = ConvKernels(*("onednn" + kernels.ADJOINT,) * 3)

    def step():
        with kernels.use(model, {"0": adjoint}):
            y = model(x)
            return y, torch.autograd.grad(y.square().sum(), (x, up.weight, up.bias))

    y, grads = step()
    assert y.shape == expected.shape == (2, 4, 16, 16)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    ops = _aten_ops(step)  # the forward pass is an ordinary convolution's input gradient
    assert "aten::convolution_backward" in ops and "aten::mkldnn_convolution" in ops
    assert not any("transpose" in op for op in ops)
    with pytest.raises(ValueError, match=r"allowed kernels for Conv2d: onednn, native$"):
        with kernels.use(nn.Sequential(nn.Conv2d(1, 1, 3)), {"0": adjoint}):
            pass


def _aten_ops(fn):
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="a torch without oneDNN")
def test_each_pass_runs_in_the_backend_chosen_for_it():
    conv = nn.Conv2d(3, 8, 3)
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    model = nn.Sequential(conv)

    def step(choice):
        with kernels.use(model, {"0": choice}):
            model(x).sum().backward()

    onednn = _aten_ops(lambda: step(ConvKernels()))
    native = _aten_ops(lambda: step(ConvKernels("native", "native", "native")))
    assert "aten::mkldnn_convolution" in onednn
    assert "aten::mkldnn_convolution" not in native
    assert any(op.startswith("aten::_slow_conv2d") for op in native)
    # the forward pass in oneDNN, both gradients in PyTorch's kernels
    mixed = _aten_ops(lambda: step(ConvKernels("onednn", "native", "native")))
    assert "aten::mkldnn_convolution" in mixed
    assert any(op.startswith("aten::_slow_conv2d_backward") for op in mixed)


def test_use_restores_the_model_and_rejects_what_is_not_a_convolution():
    model = _conv_model()
    names = _conv_names(model)
    with kernels.use(model, dict.fromkeys(names, ("native",) * 3)):
        assert all("forward" in vars(model.get_submodule(n)) for n in names)
    assert not any("forward" in vars(model.get_submodule(n)) for n in names)
    with pytest.raises(ValueError, match=r"'decoder\.0', which is not a convolution"):
        with kernels.use(model, {"decoder.0": ConvKernels()}):
            pass
    with pytest.raises(ValueError, match=r"conv_kernels\['encoder.0'\]=.*'cudnn'.*allowed"):
        with kernels.use(model, {"encoder.0": ("onednn", "cudnn", "onednn")}):
            pass
    assert not any("forward" in vars(model.get_submodule(n)) for n in names)


def test_a_transposed_convolution_told_its_output_size_keeps_it():
    up = nn.ConvTranspose2d(2, 3, 3, stride=2)
    model = nn.Sequential(up)
    x = torch.rand(1, 2, 5, 5)
    expected = up(x, output_size=(12, 12))  # (1, 3, 12, 12): one more than the default 11
    with kernels.use(model, {"0": ("native",) * 3}):
        got = up(x, output_size=(12, 12))
        assert up(x).shape[-2:] == (11, 11)
    torch.testing.assert_close(got, expected)


def test_tune_times_the_large_layers_and_changes_nothing():
    model = _conv_model()
    x = torch.rand(16, 1, 24, 24)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(7)
    expected_draw = torch.rand(2)
    torch.manual_seed(7)
    choices = kernels.tune(model, x, x, repeats=1, min_flops=0)
    assert torch.equal(torch.rand(2), expected_draw)  # the global RNG is left alone
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert set(choices) <= set(_conv_names(model))
    assert all(isinstance(c, ConvKernels) and c != ConvKernels() for c in choices.values())
    assert all(
        k in kernels.kernels_for(model.get_submodule(n)) for n, c in choices.items() for k in c
    )
    # in bfloat16, on what autocast gives each layer, and in oneDNN's kernels only
    bf16 = kernels.tune(model, x, x, repeats=1, min_flops=0, dtype=torch.bfloat16)
    assert all(k.startswith("onednn") for c in bf16.values() for k in c)
    # below the FLOP threshold nothing is timed; off the CPU or without inputs nothing either
    assert kernels.tune(model, x, x, min_flops=float("inf")) == {}
    assert kernels.tune(model) == {}


def test_forward_flops_count_both_kinds_of_convolution():
    conv, transposed = nn.Conv2d(3, 8, 3), nn.ConvTranspose2d(8, 3, 3, stride=2)
    x = torch.rand(2, 3, 10, 10)
    y = conv(x)  # (2, 8, 8, 8): each output element is 3*3*3 multiply-adds
    assert kernels.forward_flops(conv, x, y) == 2 * y.numel() * 27
    z = transposed(y)  # each input element spreads over 3*3*3 outputs
    assert kernels.forward_flops(transposed, y, z) == 2 * y.numel() * 27


def test_config_rejects_an_unknown_kernel_choice():
    allowed = "conv_kernels='fast' is not valid; allowed: auto, default"
    with pytest.raises(ValueError, match=allowed):
        TrainConfig(conv_kernels="fast")


def _refuse(*args, **kwargs):
    raise AssertionError("kernels.tune should not run here")


def test_trainer_tunes_only_when_asked_and_worth_it(monkeypatch):
    x = torch.rand(40, 1, 24, 24)
    monkeypatch.setattr(kernels, "tune", _refuse)
    # "default" never tunes; "auto" does not with fewer steps left than TUNE_MIN_STEPS (here
    # 2 steps of 40 images)
    cases = [("default", 1, "fp32"), ("auto", 3, "fp32"), ("default", 1, "bf16")]
    for mode, min_steps, precision in cases:
        monkeypatch.setattr(train, "TUNE_MIN_STEPS", min_steps)
        config = TrainConfig(epochs=2, batch_size=40, conv_kernels=mode, device="cpu",
                             precision=precision)  # fmt: skip
        trainer = Trainer(_conv_model(), config)
        trainer.fit(x, progress=False)
        assert trainer.conv_kernels == {} and trainer.tuning_seconds == 0.0
        if mode == "default":  # not even when asked directly
            assert trainer.tune_conv_kernels(x) == {}
    # in bfloat16 the kernels are timed in bfloat16
    asked = []
    monkeypatch.setattr(kernels, "tune", lambda *a, **k: asked.append(k["dtype"]) or {})
    config = TrainConfig(epochs=1, batch_size=40, device="cpu", precision="bf16")
    Trainer(_conv_model(), config).fit(x, progress=False)
    assert asked == [torch.bfloat16]
    monkeypatch.undo()  # the real tune, with both thresholds lowered
    monkeypatch.setattr(train, "TUNE_MIN_STEPS", 1)
    monkeypatch.setattr(kernels, "MIN_FLOPS", 0)
    trainer = Trainer(_conv_model(), TrainConfig(epochs=1, batch_size=8, device="cpu"))
    trainer.fit(x, progress=False)
    assert trainer.conv_kernels is not None and trainer.tuning_seconds > 0


def test_a_resumed_run_keeps_the_kernels_it_chose(monkeypatch, tmp_path):
    spec = DataSpec(source="digits", holdout=0.2, seed=0)
    chosen = {"decoder.3": ConvKernels("onednn", "native", "native")}
    monkeypatch.setattr(train, "TUNE_MIN_STEPS", 1)
    monkeypatch.setattr(kernels, "tune", lambda *a, **k: dict(chosen))
    cfg = dict(batch_size=64, seed=3, device="cpu")
    full = train_run("conv", spec, TrainConfig(epochs=3, **cfg), tmp_path / "full", progress=False)
    part = tmp_path / "part"
    train_run("conv", spec, TrainConfig(epochs=1, **cfg), part, progress=False)
    saved = json.loads((part / "checkpoint-000001" / "trainer.json").read_text())
    assert saved["conv_kernels"] == {"decoder.3": ["onednn", "native", "native"]}
    monkeypatch.setattr(kernels, "tune", _refuse)  # resuming must not choose again
    resumed = train_run("conv", spec, TrainConfig(epochs=3, **cfg), part, resume=True,
                        progress=False)  # fmt: skip
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
