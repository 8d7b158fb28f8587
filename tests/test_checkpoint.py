"""The files of a run's state: weights, optimizer state, history and trainer state, through
safetensors and JSON only, written atomically."""

from __future__ import annotations

import pytest
import torch

from aelab.models import build_model
from aelab.runs.checkpoint import load_optimizer, load_state, save_optimizer, save_state
from aelab.training.config import TrainConfig
from aelab.training.trainer import Trainer
from aelab.utils.files import fit_weights, load_weights, save_weights


def _fit(seed, epochs=2):
    """A trainer after ``epochs`` epochs (0: untrained)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model("conv", (1, 16, 16), latent_dim=4)
    config = TrainConfig(epochs=max(epochs, 1), batch_size=16, seed=seed, device="cpu")
    trainer = Trainer(model, config)
    if epochs:
        x = torch.rand(40, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        trainer.fit(x, progress=False)
    return trainer


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


def test_a_trainer_state_round_trips_through_files(tmp_path):
    trainer = _fit(0)
    save_state(tmp_path, trainer.state_dict())
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"model.safetensors", "optimizer.safetensors", "optimizer.json",
                     "history.json", "trainer.json"}  # fmt: skip
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    state = load_state(tmp_path)
    assert state["epoch"] == 2 and state["history"] == trainer.history
    fresh = _fit(7, epochs=0)
    fresh.load_state_dict(state)
    a, b = trainer.state_dict(), fresh.state_dict()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # the optimizer's state tensors get their parameter's (channels-last) layout back
    for p in fresh.model.parameters():
        for v in fresh.optimizer.state[p].values():
            if torch.is_tensor(v) and v.shape == p.shape:
                assert v.stride() == p.stride()


def test_weights_must_fit_the_model(tmp_path):
    model = build_model("deep", (1, 8, 8), latent_dim=4, hidden=(16,))
    save_weights(model, tmp_path / "w.safetensors")
    other = build_model("deep", (1, 8, 8), latent_dim=5, hidden=(16,))
    with pytest.raises(ValueError, match=r"w.safetensors: weights do not fit the model \("):
        load_weights(other, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"nothing: weights do not fit the model \(missing \['d"):
        fit_weights(model, {}, "nothing")
    with pytest.raises(FileNotFoundError, match=r"no such file"):
        load_weights(model, tmp_path / "none.safetensors")
