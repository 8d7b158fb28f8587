"""The training loop and run directories: determinism, resume, checkpoints, history, loading."""

from __future__ import annotations

import math

import pytest
import torch

from aelab.models import build_model
from aelab.runs.run import DataSpec
from aelab.training.config import TrainConfig
from aelab.training.optim import RMSprop
from aelab.training.trainer import Trainer


@pytest.fixture(scope="module")
def digits_spec():
    return DataSpec(source="digits", holdout=0.2, seed=0)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _fit(seed, epochs=2, noise=None):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model("deep", (1, 8, 8), latent_dim=4, hidden=(16,))
    cfg = TrainConfig(epochs=epochs, batch_size=32, seed=seed, device="cpu", noise=noise)
    x = torch.rand(100, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    trainer = Trainer(model, cfg)
    trainer.fit(x, x[:20], progress=False)
    return trainer


def test_same_seed_same_weights_different_seed_differs():
    a, b, c = _fit(0), _fit(0), _fit(1)
    wa, wb, wc = _weights(a.model), _weights(b.model), _weights(c.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_training_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _fit(0)
    assert torch.equal(torch.rand(3), expected)


def test_history_schema_and_loss_decreases():
    trainer = _fit(0, epochs=15)
    h = trainer.history
    assert [r["epoch"] for r in h] == list(range(1, 16))
    assert set(h[0]) == {"epoch", "loss", "heldout_loss", "validation_loss", "seconds", "threads"}
    assert h[-1]["loss"] < h[0]["loss"]
    assert all(r["threads"] == torch.get_num_threads() for r in h)  # fixed by the tests' conftest
    assert all(r["seconds"] > 0 and r["heldout_loss"] is not None for r in h)


def test_noise_is_applied_to_inputs_only():
    seen = []

    def corrupt(x):
        seen.append(x)
        return x + 1.0

    model = build_model("deep", (1, 8, 8), latent_dim=4, hidden=(16,))
    x = torch.rand(10, 1, 8, 8)
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=10, device="cpu"), corrupt=corrupt)
    trainer.fit(x, progress=False)
    assert len(seen) == 1 and torch.equal(seen[0].sort(0).values, x.sort(0).values)
    # denoising with noise gives a different result from plain training
    assert _fit(0, noise="gaussian:0.2").history[-1]["loss"] != _fit(0).history[-1]["loss"]


def test_train_config_errors():
    with pytest.raises(ValueError, match=r"batch_size=0 is not valid; expected an integer >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"optimizer='lbfgs' is not valid; allowed: adam"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(
        ValueError, match=r"learning_rate=-1 is not valid; expected a finite number > 0"
    ):
        TrainConfig(learning_rate=-1)
    with pytest.raises(ValueError, match=r"device='tpu' is not valid; allowed: auto, cpu"):
        TrainConfig(device="tpu")


def test_trainer_uses_fused_kernels_and_keeps_precision():
    model = build_model("vae", (1, 8, 8))
    config = TrainConfig(epochs=1, optimizer="rmsprop", device="cpu", precision="fp32")
    trainer = Trainer(model, config)
    assert isinstance(trainer.optimizer, RMSprop) and trainer.precision == "fp32"
    adam = Trainer(build_model("deep", (1, 8, 8)), TrainConfig(device="cpu")).optimizer
    assert adam.defaults["fused"] is True
    fp16 = r"precision='fp16' is not valid; did you mean 'bf16'\? allowed: auto, fp32"
    with pytest.raises(ValueError, match=fp16):
        TrainConfig(precision="fp16")


def test_bf16_autocast_trains():
    x = torch.rand(32, 1, 8, 8)
    trainer = Trainer(
        build_model("deep", (1, 8, 8)), TrainConfig(epochs=2, device="cpu", precision="bf16")
    )
    with trainer.autocast():
        assert trainer.model(x, x).x_hat.dtype == torch.bfloat16
    history = trainer.fit(x, progress=False)
    assert all(math.isfinite(h["loss"]) for h in history)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
