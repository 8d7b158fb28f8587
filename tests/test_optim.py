"""Optimizers: Keras' RMSprop, fused, against its formula; the registry's defaults."""

from __future__ import annotations

import pytest
import torch

from aelab.models import build_model
from aelab.training.optim import OPTIMIZERS, RMSprop, make_optimizer


@pytest.mark.parametrize("fused", [True, False])
def test_rmsprop_is_keras_rmsprop(fused):
    """v = alpha v + (1 - alpha) g^2 and p -= lr g / sqrt(v + eps), in both implementations."""
    torch.manual_seed(0)
    w0 = torch.randn(64, 33)
    # every other step small gradients, where eps matters
    grads = [torch.randn_like(w0) * (1e-3 if step % 2 else 1.0) for step in range(25)]
    w, w_torch = w0.clone().requires_grad_(), w0.clone().requires_grad_()
    ours = RMSprop([w], lr=1e-2, alpha=0.9, eps=1e-4, fused=fused)
    theirs = torch.optim.RMSprop([w_torch], lr=1e-2, alpha=0.9, eps=1e-4)
    ref, v = w0.double(), torch.zeros_like(w0, dtype=torch.float64)
    for g in grads:
        w.grad, w_torch.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
        v = 0.9 * v + 0.1 * g.double() ** 2
        ref = ref - 1e-2 * g.double() / torch.sqrt(v + 1e-4)
    torch.testing.assert_close(w.double(), ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours.state[w]["square_avg"].double(), v + 1e-4, rtol=1e-5, atol=0)
    assert float(ours.state[w]["step"]) == 25
    # torch.optim.RMSprop puts eps outside the root: a different update
    assert (w_torch.double() - ref).abs().max() > 1e-2


def test_rmsprop_rejects_bad_settings():
    w = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"alpha=1.0 is not valid; expected 0 <= alpha < 1"):
        RMSprop([w], alpha=1.0)
    with pytest.raises(ValueError, match=r"eps=0.0 is not valid; expected a number > 0"):
        RMSprop([w], eps=0.0)
    w.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match=r"fused=True is not available .* alpha=0.0"):
        RMSprop([w], alpha=0.0, fused=True).step()
    RMSprop([w], alpha=0.0).step()  # falls back to the unfused step
    torch.testing.assert_close(w, torch.full((3,), -1e-3 / (1 + 1e-7) ** 0.5))


def test_make_optimizer_uses_keras_defaults_and_fused_kernels():
    model = build_model("deep", (1, 8, 8))
    adam = make_optimizer(model, "adam")
    assert adam.defaults["lr"] == 1e-3 and adam.defaults["eps"] == 1e-7 and adam.defaults["fused"]
    assert make_optimizer(model, "sgd", 0.5).defaults["lr"] == 0.5
    assert isinstance(make_optimizer(model, "rmsprop"), RMSprop)
    assert set(OPTIMIZERS) == {"adam", "adamw", "rmsprop", "sgd"}
    with pytest.raises(ValueError, match=r"optimizer='lbfgs' is not valid; allowed: adam"):
        make_optimizer(model, "lbfgs")
