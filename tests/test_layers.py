"""Full-precision layers: the plain layers bit for bit without autocast, their weights' dtype under
it (float64 copies too), the same state-dict keys, and the code layers of each family kept in
float32 by bfloat16 autocast while the rest of the model computes in bfloat16."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aelab.models import build_model
from aelab.models.layers import (
    FullPrecisionConvTranspose2d,
    FullPrecisionLinear,
    autocast_on,
    is_full_precision,
    no_autocast,
)
from aelab.training import kernels

BF16 = {"device_type": "cpu", "dtype": torch.bfloat16}


def _pair(plain_class, full_class, *args, **kwargs):
    torch.manual_seed(0)
    plain = plain_class(*args, **kwargs)
    full = full_class(*args, **kwargs)
    full.load_state_dict(plain.state_dict())  # the same keys: either loads the other's weights
    plain.load_state_dict(full.state_dict())
    return plain, full


LAYERS = [
    (nn.Linear, FullPrecisionLinear, (12, 5), (7, 12)),
    (nn.ConvTranspose2d, FullPrecisionConvTranspose2d, (3, 2, 3), (4, 3, 5, 5)),
]


@pytest.mark.parametrize(("plain_class", "full_class", "args", "shape"), LAYERS)
def test_without_autocast_it_is_the_plain_layer_bit_for_bit(plain_class, full_class, args, shape):
    plain, full = _pair(plain_class, full_class, *args)
    assert isinstance(full, plain_class) and is_full_precision(full)
    assert not is_full_precision(plain)
    x = torch.randn(shape, requires_grad=True)
    assert torch.equal(full(x), plain(x))
    (g_full,) = torch.autograd.grad(full(x).square().sum(), x)
    (g_plain,) = torch.autograd.grad(plain(x).square().sum(), x)
    assert torch.equal(g_full, g_plain)


@pytest.mark.parametrize(("plain_class", "full_class", "args", "shape"), LAYERS)
def test_under_bf16_autocast_it_computes_in_its_weights_dtype(plain_class, full_class, args, shape):
    plain, full = _pair(plain_class, full_class, *args)
    x = torch.randn(shape).bfloat16().requires_grad_()  # what a bf16 layer before it gives
    with torch.autocast(**BF16):
        y_plain, y_full = plain(x), full(x)
    assert y_plain.dtype == torch.bfloat16
    assert y_full.dtype == torch.float32
    assert torch.equal(y_full, plain(x.float()))  # float32 arithmetic on the bf16 input
    y_full.sum().backward()
    assert x.grad.dtype == torch.bfloat16  # the gradient goes back in its input's dtype
    assert full.weight.grad.dtype == torch.float32
    # a float64 copy stays float64, as a .double() model's check of gradients needs
    full64 = full.double()
    with torch.autocast(**BF16):
        assert full64(x.detach().double()).dtype == torch.float64


def test_a_transposed_convolution_told_its_output_size_keeps_it():
    _, full = _pair(nn.ConvTranspose2d, FullPrecisionConvTranspose2d, 3, 2, 3, stride=2)
    x = torch.randn(1, 3, 4, 4).bfloat16()
    with torch.autocast(**BF16):
        y = full(x, output_size=(10, 10))
    assert y.shape == (1, 2, 10, 10) and y.dtype == torch.float32


def test_autocast_helpers_name_the_state_and_leave_devices_without_autocast_alone():
    assert not autocast_on("cpu")
    with torch.autocast(**BF16):
        assert autocast_on("cpu")
        with no_autocast("cpu"):
            assert not autocast_on("cpu")
        assert autocast_on("cpu")
    assert not autocast_on("meta")  # the meta device has no autocast: no error either
    with no_autocast("meta"):
        pass


@pytest.mark.parametrize(
    ("name", "shape", "full_code"),
    [
        ("deep", (1, 16, 16), True),
        ("shallow", (1, 16, 16), False),  # its code layer reads the image: all in bf16
        ("conv", (1, 28, 28), True),
        ("vae", (1, 16, 16), True),
        ("vae-flat", (1, 16, 16), False),  # hidden=(): its code layers touch the image
        ("conv-vae", (1, 28, 28), True),
        ("vqvae", (1, 28, 28), True),
    ],
)
def test_bf16_autocast_keeps_the_code_layers_in_float32(name, shape, full_code):
    torch.manual_seed(0)
    model = build_model("vae", shape, hidden=()) if name == "vae-flat" else build_model(name, shape)
    x = torch.rand(4, *shape)
    code_dtypes = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: code_dtypes.append(out.dtype))
        for m in model.modules()
        if is_full_precision(m)
    ]
    with torch.autocast(**BF16):
        out = model(x, x)
    for h in hooks:
        h.remove()
    assert bool(code_dtypes) == full_code
    assert all(d == torch.float32 for d in code_dtypes)
    # the code the decoder saw: float32 where its layers keep full precision (a VQ-VAE's codes
    # are float32 in any case, its quantiser runs without autocast)
    assert out.z.dtype == (torch.float32 if full_code else torch.bfloat16)
    assert out.x_hat.dtype == torch.bfloat16  # the heavy layers still run in bfloat16
    out.loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())
    # the state-dict keys are those the families always had (saved runs load)
    assert "decoder.0.weight" in model.state_dict() or "decoder.0.0.weight" in model.state_dict()


def test_the_conv_kernels_keep_a_full_precision_convolution_in_float32():
    torch.manual_seed(0)
    model = build_model("conv", (1, 24, 24), channels=(4, 8), latent_dim=6)
    name = [n for n, m in model.named_modules() if isinstance(m, nn.ConvTranspose2d)][-1]
    last = model.get_submodule(name)
    last.__class__ = FullPrecisionConvTranspose2d  # the same weights, now kept in float32
    x = torch.rand(16, 1, 24, 24)
    seen = []
    last.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    choices = {name: kernels.ConvKernels("native", "native", "native")}
    with torch.autocast(**BF16):
        expected = model(x, x).x_hat
        with kernels.use(model, choices):
            got = model(x, x).x_hat
    assert seen == [torch.float32, torch.float32]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # tuning in bfloat16 times that layer in float32, where PyTorch's own kernels may win
    tuned = kernels.tune(model, x, x, repeats=1, min_flops=0, dtype=torch.bfloat16)
    assert all(k in kernels.kernels_for(last) for k in tuned.get(name, ()))
