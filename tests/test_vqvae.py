"""The VQ-VAE family: nearest codes, straight-through gradients, EMA codebook updates by hand,
dead-code restarts, its metrics, and the entry points that must refuse or pass a discrete code."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from aelab.apps.explorer.space import LatentSpace
from aelab.cli import main
from aelab.models import build_model, model_from_config
from aelab.models.vqvae import LAPLACE_EPS, VectorQuantizer
from aelab.runs.run import load_run
from aelab.utils.files import load_weights, save_weights

CODEBOOK = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])  # (K=3, D=2)


def _quantizer(decay: float = 0.99, restart_after: int = 100) -> VectorQuantizer:
    q = VectorQuantizer(3, 2, decay, restart_after)
    q.codebook.copy_(CODEBOOK)
    q.ema_sum.copy_(CODEBOOK)  # as if each code had been chosen once, by its own vector
    q.ema_count.fill_(1.0)
    q.idle.zero_()  # none idle yet: no restart unless a test asks for one
    return q


def test_quantisation_picks_the_nearest_code():
    q = _quantizer()
    z = torch.tensor([[0.1, 0.1], [0.9, -0.2], [0.2, 1.5], [0.6, 0.0]])
    z_q, idx, commitment = q(z)
    assert idx.tolist() == [0, 1, 2, 1]
    assert torch.equal(z_q, CODEBOOK[[0, 1, 2, 1]])
    assert commitment.item() == pytest.approx(((z - CODEBOOK[[0, 1, 2, 1]]) ** 2).mean().item())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # distances stay in float32
        assert q(z + 1e-3)[1].tolist() == [0, 1, 2, 1]


def test_a_float64_copy_quantises_in_float64():  # the estimator's path for float64 input
    torch.manual_seed(0)
    model = build_model("vqvae", (1, 16, 16), latent_dim=8).eval()
    x = torch.rand(3, 1, 16, 16)
    double = copy.deepcopy(model).double()
    assert double.encode(x.double()).dtype == torch.float64
    assert torch.equal(double.code_indices(x.double()), model.code_indices(x))


def test_straight_through_gradients_reach_the_encoder():
    z = torch.tensor([[0.1, 0.1], [0.9, -0.2]], requires_grad=True)
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    (_quantizer()(z)[0] * w).sum().backward()
    assert torch.equal(z.grad, w)  # the gradient at z_q, passed through unchanged
    torch.manual_seed(0)
    model = build_model("vqvae", (1, 16, 16), latent_dim=8)
    model(torch.rand(4, 1, 16, 16)).recon_loss.backward()  # no commitment term
    first_conv = model.encoder[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_ema_update_matches_a_hand_computation():
    q = _quantizer(decay=0.5)
    q.ema_count.copy_(torch.tensor([2.0, 1.0, 1.0]))
    q.ema_sum.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]))
    z = torch.tensor([[0.2, 0.0], [0.0, 0.4], [1.0, 1.0]])  # codes 0, 0, 1; code 2 unused
    z_q, idx, _ = q(z, update=True)
    assert idx.tolist() == [0, 0, 1] and torch.equal(z_q, CODEBOOK[[0, 0, 1]])  # before the move
    # N = 0.5 N + 0.5 counts; m = 0.5 m + 0.5 sums of the assigned inputs
    count = torch.tensor([0.5 * 2 + 0.5 * 2, 0.5 * 1 + 0.5 * 1, 0.5 * 1 + 0])  # (2, 1, 0.5)
    total = torch.tensor([[0.5 * 0 + 0.5 * 0.2, 0.5 * 0 + 0.5 * 0.4], [0.5 + 0.5, 0.5], [0, 1]])
    assert torch.allclose(q.ema_count, count) and torch.allclose(q.ema_sum, total)
    n = count.sum()
    smoothed = (count + LAPLACE_EPS) / (n + 3 * LAPLACE_EPS) * n  # Laplace smoothing
    assert torch.allclose(q.codebook, total / smoothed[:, None])
    assert torch.allclose(
        q.codebook, torch.tensor([[0.05, 0.1], [1.0, 0.5], [0.0, 2.0]]), atol=1e-4
    )
    assert q.idle.tolist() == [0, 0, 1]


def test_updates_happen_only_in_training_forward():
    torch.manual_seed(0)
    model = build_model("vqvae", (1, 16, 16), latent_dim=8)
    x = torch.rand(4, 1, 16, 16)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    model.encode(x), model.code_indices(x), model.extra_metrics(x)  # in training mode, too
    model.eval()
    model(x)
    assert all(torch.equal(v, buffers[k]) for k, v in model.named_buffers())
    model.train()
    model(x)
    assert not torch.equal(model.quantizer.codebook, buffers["quantizer.codebook"])


def test_a_dead_code_is_restarted_at_an_encoder_output():
    q = _quantizer(decay=0.5, restart_after=2)
    z = torch.tensor([[0.1, 0.0], [0.9, 0.1], [0.0, 0.2]])  # never near code 2
    q(z, update=True)
    assert (
        torch.allclose(q.codebook[2], CODEBOOK[2], atol=1e-4) and q.idle[2] == 1
    )  # unused once: kept
    q(z, update=True)
    assert any(torch.equal(q.codebook[2], row) for row in z)  # unused twice: restarted
    assert q.idle[2] == 0 and q.ema_count[2] == 1 and torch.equal(q.ema_sum[2], q.codebook[2])
    # a fresh codebook starts idle: the first training batch initialises every unused code
    fresh = VectorQuantizer(8, 2, 0.99, 100)
    _, idx, _ = fresh(z, update=True)
    unused = set(range(8)) - set(idx.tolist())
    assert all(any(torch.equal(fresh.codebook[i], row) for row in z) for i in unused)


def test_usage_and_perplexity_against_a_hand_count(monkeypatch):
    model = build_model("vqvae", (1, 16, 16), latent_dim=8, code_dim=4, codebook_size=4)
    idx = torch.tensor([0, 0, 0, 1, 1, 2])  # 3 images x 2 slots; counts 3, 2, 1, 0
    monkeypatch.setattr(model.quantizer, "nearest", lambda z: idx)
    m = model.extra_metrics(torch.rand(3, 1, 16, 16))
    assert m["codebook_usage"] == 0.75
    p = [3 / 6, 2 / 6, 1 / 6]
    assert m["perplexity"] == pytest.approx(math.exp(-sum(q * math.log(q) for q in p)))
    assert model.code_indices(torch.rand(3, 1, 16, 16)).tolist() == [[0, 0], [0, 1], [1, 2]]


def test_the_prior_draws_every_slot_uniformly_from_the_codebook():
    model = build_model("vqvae", (1, 16, 16), latent_dim=8, code_dim=4, codebook_size=4)
    z = model.sample_prior(400, np.random.default_rng(0))
    assert z.shape == (400, 8) and z.dtype == np.float64
    rows = model.quantizer.codebook.double().numpy()
    for slot in (z[:, :4], z[:, 4:]):  # each slot a codebook row; all four drawn, about evenly
        drawn = [int(np.flatnonzero((rows == r).all(1))[0]) for r in slot]
        assert sorted(set(drawn)) == [0, 1, 2, 3]
        assert min(np.bincount(drawn)) > 60
    assert np.array_equal(z, model.sample_prior(400, np.random.default_rng(0)))


def test_trained_buffers_survive_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = build_model("vqvae", (1, 16, 16), latent_dim=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        out = model(torch.rand(8, 1, 16, 16))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    path = tmp_path / "model.safetensors"
    save_weights(model, path)
    buffers = {f"quantizer.{b}" for b in ("codebook", "ema_count", "ema_sum", "idle")}
    assert buffers <= set(load_file(path))
    clone = load_weights(model_from_config("vqvae", model.config.to_dict()), path)
    for (k, a), (_, b) in zip(model.named_buffers(), clone.named_buffers()):
        assert torch.equal(a, b), k


def test_config_errors():
    match = r"latent_dim=30 is not valid for code_dim=4; expected a multiple of code_dim"
    with pytest.raises(ValueError, match=match):
        build_model("vqvae", (1, 28, 28), latent_dim=30)
    with pytest.raises(ValueError, match=r"codebook_size=1 is not valid; expected an integer >= 2"):
        build_model("vqvae", (1, 28, 28), codebook_size=1)
    with pytest.raises(ValueError, match=r"decay=1.0 is not valid; expected 0 <= decay < 1"):
        build_model("vqvae", (1, 28, 28), decay=1.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("vqvae") / "run"
    args = ["train", "vqvae", "--data", "digits", "--epochs", "1", "--out", str(out), "--quiet"]
    assert main(args) == 0
    return out


def test_trains_from_the_command_line_and_the_explorer_refuses_it(trained):
    assert json.loads((trained / "config.json").read_text())["model"]["family"] == "vqvae"
    run = load_run(trained)
    assert run.model.discrete_codes
    with pytest.raises(ValueError, match="discrete codes"):
        LatentSpace(run, run.data(carve=False))


def test_the_workshop_reports_it_without_random_codes(tmp_path, capsys):
    out = tmp_path / "workshop"
    args = ["run", "--data", "digits", "--models", "vqvae", "--schedule", "quick", "--epochs", "1",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    family = json.loads((out / "metrics.json").read_text())["models"]["vqvae"]["family"]
    assert 0 < family["codebook_usage"] <= 1 and 1 <= family["perplexity"] <= 256
    figures = {p.name for p in (out / "figures").iterdir()}
    assert "codes_vqvae.png" in figures and "interpolation.png" in figures
    assert not {"generated_random_vqvae.png", "generated_pca_vqvae.png"} & figures
    html = (out / "report.html").read_text()
    assert "codebook usage" in html and "perplexity" in html
