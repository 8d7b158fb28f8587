"""Input corruptions for denoising: seeded, input left alone, the amounts they promise, parsing."""

from __future__ import annotations

import re

import pytest
import torch

from aelab.training.noise import Noise, parse_noise


@pytest.mark.parametrize("spec", ["gaussian:0.3", "saltpepper:0.2", "mask:0.25"])
def test_noise_is_seeded_and_leaves_its_input_alone(spec):
    noise = parse_noise(spec)
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    before = x.clone()
    a = noise(x, torch.Generator().manual_seed(1))
    b = noise(x, torch.Generator().manual_seed(1))
    c = noise(x, torch.Generator().manual_seed(2))
    assert torch.equal(x, before)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert parse_noise(str(noise)) == noise and str(noise) == spec


def test_noise_amounts():
    g = torch.Generator().manual_seed(0)
    x = torch.full((64, 1, 64, 64), 0.5)
    d = Noise("gaussian", 0.05)(x, g) - x
    assert abs(d.std().item() - 0.05) < 0.05 * 0.05 and abs(d.mean().item()) < 1e-3
    assert (Noise("gaussian", 1.0)(x, g) > 1).any()  # not clipped
    out = Noise("saltpepper", 0.2)(x, g)
    assert abs((out == 0).float().mean().item() - 0.1) < 0.01
    assert abs((out == 1).float().mean().item() - 0.1) < 0.01
    x3 = torch.rand(64, 3, 32, 32, generator=g) * 0.9 + 0.05
    out = Noise("mask", 0.3)(x3, g)
    zero = out == 0
    assert abs(zero.float().mean().item() - 0.3) < 0.01
    assert torch.equal(zero[:, 0], zero[:, 1]) and torch.equal(zero[:, 0], zero[:, 2])  # locations
    assert torch.equal(out[~zero], x3[~zero])


def test_parse_noise():
    assert parse_noise(None) is None and parse_noise("none") is None
    n = Noise("mask", 0.5)
    assert parse_noise(n) is n and parse_noise(" Gaussian:0.1 ") == Noise("gaussian", 0.1)
    assert str(parse_noise("gaussian:2")) == "gaussian:2.0" and parse_noise("gaussian:2").level == 2
    bad = ["foo:1", "gaussian", "gaussian:0", "gaussian:-1", "gaussian:nan", "mask:1", "mask:0",
           "saltpepper:1.5", "mask:x", ":0.1", 3]  # fmt: skip
    for spec in bad:
        with pytest.raises(
            ValueError, match=re.escape(f"noise={spec!r} is not valid; use gaussian")
        ):
            parse_noise(spec)
    with pytest.raises(ValueError, match=r"noise='pink:3' is not valid; .*\(0 < P < 1\)"):
        Noise("pink", 3)
