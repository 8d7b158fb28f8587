"""The training loop and run directories: determinism, resume, checkpoints, history, loading."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from aelab.checkpoint import load_optimizer, save_optimizer
from aelab.device import resolve_device
from aelab.models import build_model
from aelab.optim import RMSprop
from aelab.runs import DataSpec, check_out_dir, load_run, train_run
from aelab.train import TrainConfig, Trainer


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
    assert set(h[0]) == {"epoch", "loss", "heldout_loss", "seconds"}
    assert h[-1]["loss"] < h[0]["loss"]
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


def test_optimizer_state_round_trip(tmp_path):
    trainer = _fit(0)
    save_optimizer(trainer.optimizer.state_dict(), tmp_path)
    fresh = _fit(5, epochs=0)
    fresh.optimizer.load_state_dict(load_optimizer(tmp_path))
    a, b = trainer.optimizer.state_dict(), fresh.optimizer.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid, state in a["state"].items():
        for k, v in state.items():
            assert torch.equal(v, b["state"][pid][k])


@pytest.mark.parametrize("name", ["deep", "vae", "denoising"])
def test_resume_equals_uninterrupted(name, digits_spec, tmp_path):
    cfg = dict(batch_size=64, seed=3, device="cpu", optimizer="adam")
    noise = "gaussian:0.05" if name == "denoising" else None
    full = train_run(name, digits_spec, TrainConfig(epochs=4, noise=noise, **cfg),
                     tmp_path / "full", progress=False)  # fmt: skip
    part = tmp_path / "part"
    train_run(name, digits_spec, TrainConfig(epochs=2, noise=noise, **cfg), part, progress=False)
    resumed = train_run(name, digits_spec, TrainConfig(epochs=4, **cfg), part, resume=True,
                        progress=False)  # fmt: skip
    wa, wb = _weights(full.model), _weights(resumed.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["loss"] for r in full.history] == [r["loss"] for r in resumed.history]
    assert len(json.loads((part / "history.json").read_text())) == 4


def test_run_directory_contents_and_load_run(digits_spec, tmp_path):
    out = tmp_path / "run"
    run = train_run("conv", digits_spec, TrainConfig(epochs=2, batch_size=128, device="cpu"),
                    out, progress=False)  # fmt: skip
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "history.json"} <= names
    assert not any(p.suffix in (".pt", ".pth", ".pkl") for p in out.iterdir())
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["name"] == "conv"
    assert config["versions"]["torch"] == torch.__version__
    assert config["data"]["source"] == "digits"
    assert config["split"]["image_shape"] == [1, 8, 8]
    history = json.loads((out / "history.json").read_text())
    assert [set(r) for r in history] == [{"epoch", "loss", "heldout_loss", "seconds"}] * 2

    loaded = load_run(out)
    split = loaded.data()
    x = split.heldout.images[:10]
    np.testing.assert_array_equal(loaded.encode(x), run.encode(x))
    z = loaded.encode(x)
    assert z.shape == (10, 32)
    np.testing.assert_array_equal(loaded.decode(z), run.decode(z))
    assert loaded.decode(z).shape == x.shape


def test_checkpoint_every(digits_spec, tmp_path, monkeypatch):
    import aelab.checkpoint as checkpoint

    saved_epochs = []
    original = checkpoint.save_state

    def spy(path, state):
        saved_epochs.append(state["epoch"])
        original(path, state)

    monkeypatch.setattr(checkpoint, "save_state", spy)
    train_run("deep", digits_spec,
              TrainConfig(epochs=5, batch_size=256, checkpoint_every=2, device="cpu"),
              tmp_path / "ck", progress=False)  # fmt: skip
    assert saved_epochs == [2, 4, 5]


def test_out_dir_rules(tmp_path):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"already holds files; pass --overwrite"):
        check_out_dir(earlier, resume=False, overwrite=False)
    with pytest.raises(ValueError, match=r"is not an aelab run \(no config.json\); refusing"):
        check_out_dir(earlier, resume=False, overwrite=True)
    with pytest.raises(ValueError, match=r"holds no run to resume"):
        check_out_dir(earlier, resume=True, overwrite=False)
    assert (earlier / "notes.txt").read_text() == "mine"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=r"is a file; expected a folder"):
        check_out_dir(a_file, resume=False, overwrite=False)


def test_train_config_errors():
    with pytest.raises(ValueError, match=r"batch_size=0 is not valid; expected an integer >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"optimizer='lbfgs' is not valid; allowed: adam"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match=r"learning_rate=-1 is not valid"):
        TrainConfig(learning_rate=-1)
    with pytest.raises(ValueError, match=r"device='tpu' is not valid; allowed: auto, cpu"):
        TrainConfig(device="tpu")


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device='cuda' is not available here"):
            resolve_device("cuda")


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


def test_trainer_uses_fused_kernels_and_keeps_precision():
    model = build_model("vae", (1, 8, 8))
    trainer = Trainer(model, TrainConfig(epochs=1, optimizer="rmsprop", device="cpu"))
    assert isinstance(trainer.optimizer, RMSprop) and trainer.precision == "fp32"
    adam = Trainer(build_model("deep", (1, 8, 8)), TrainConfig(device="cpu")).optimizer
    assert adam.defaults["fused"] is True
    with pytest.raises(ValueError, match="precision='fp16' is not valid; allowed: auto, fp32"):
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
