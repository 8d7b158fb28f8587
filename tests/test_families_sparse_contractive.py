"""The sparse and contractive families: each penalty against a hand computation on a tiny input,
the sparse code's own metrics, their config errors, and a one-epoch run from the command line.

What every registered recipe must do (shapes, gradients, learning, saving) is in test_models.py.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from aelab.cli import main
from aelab.models import build_model
from aelab.models.contractive import mlp_jacobian_norm, sigmoid_layer_norm
from aelab.models.sparse import SparseConfig, active_units, top_k

W = torch.tensor([[1.0, -1.0], [0.5, 0.5], [-2.0, 0.0]])  # 3 code units of a 2-pixel image
B = torch.tensor([0.0, 0.1, 0.2])
X = torch.tensor([[1.0, 2.0], [3.0, 0.0]]).reshape(2, 1, 1, 2)  # two (1, 1, 2) images


def _hand_set(name: str, **overrides):
    """A model of recipe ``name`` on (1, 1, 2) images whose one encoder layer is ``W``, ``B``."""
    model = build_model(name, (1, 1, 2), latent_dim=3, hidden=(), **overrides)
    linear = model.encoder[1][0]
    with torch.no_grad():
        linear.weight.copy_(W)
        linear.bias.copy_(B)
    return model


def test_l1_penalty_is_the_weighted_mean_absolute_code():
    model = _hand_set("sparse", l1=0.5)
    # relu(W x + b): image (1, 2) -> (-1, 1.6, -1.8) -> (0, 1.6, 0); (3, 0) -> (3, 1.6, 0)
    expected_z = torch.tensor([[0.0, 1.6, 0.0], [3.0, 1.6, 0.0]])
    out = model(X)
    torch.testing.assert_close(out.z, expected_z)
    assert out.reg_loss.item() == pytest.approx(0.5 * 6.2 / 6)
    assert out.loss.item() == pytest.approx(out.recon_loss.item() + 0.5 * 6.2 / 6)


def test_extra_metrics_count_dead_and_active_units_by_hand():
    model = _hand_set("sparse")
    # unit 0 fires on the second image, unit 1 on both, unit 2 never: 1 of 3 dead, 1.5 per image
    metrics = model.extra_metrics(X)
    assert metrics == {"dead_unit_fraction": pytest.approx(1 / 3), "mean_active_units": 1.5}
    sigmoid = torch.tensor([[0.9, 0.2, 0.51], [0.4, 0.1, 0.3]])  # never 0: active means > 0.5
    assert active_units(sigmoid, "sigmoid").tolist() == [[True, False, True], [False] * 3]
    assert active_units(torch.tensor([[1e-7, -0.2]]), "relu").tolist() == [[False, True]]


def test_kl_penalty_is_ngs_formula_written_out():
    rho, beta = 0.2, 0.7
    model = _hand_set("sparse", penalty="kl", latent_activation="sigmoid", rho=rho, beta=beta)
    x = X.reshape(2, 2)
    penalty = 0.0
    for j in range(3):
        rho_hat = sum(1 / (1 + math.exp(-(W[j] @ x[i] + B[j]).item())) for i in range(2)) / 2
        penalty += rho * math.log(rho / rho_hat) + (1 - rho) * math.log((1 - rho) / (1 - rho_hat))
    assert model(X).reg_loss.item() == pytest.approx(beta * penalty, rel=1e-5)


def test_top_k_keeps_exactly_k_largest_units_of_each_code():
    torch.manual_seed(0)
    model = build_model("topk", (1, 6, 6), latent_dim=12, k=5, latent_activation=None)
    x = torch.rand(7, 1, 6, 6)
    z = model.encode(x)
    dense = model.encoder(x)  # (7, 12): the code before the top-k
    kept = z != 0
    assert (kept.sum(1) == 5).all()
    torch.testing.assert_close(z[kept], dense[kept])  # kept units pass unchanged
    lowest_kept = dense.masked_fill(~kept, math.inf).min(1).values
    highest_dropped = dense.masked_fill(kept, -math.inf).max(1).values
    assert (lowest_kept > highest_dropped).all()
    assert model(x).reg_loss.item() == 0 and torch.equal(model(x).z, z)
    assert top_k(torch.tensor([[0.0, 3.0, -1.0, 2.0]]), 2).tolist() == [[0.0, 3.0, 0.0, 2.0]]
    # k defaults to a quarter of the code; a relu code keeps at most k non-zero units
    relu = build_model("topk", (1, 6, 6), latent_dim=12)
    assert relu.config.k == 3 and ((relu.encode(x) != 0).sum(1) <= 3).all()


def test_the_encoder_sees_images_minus_the_training_mean():
    torch.manual_seed(0)
    model = build_model("sparse", (1, 4, 4), latent_dim=5)
    x = torch.rand(6, 1, 4, 4)
    assert model.needs_data_init and torch.equal(model.input_mean, torch.zeros(1, 4, 4))
    model.init_from_data(x)
    torch.testing.assert_close(model.input_mean, x.mean(0))
    torch.testing.assert_close(model.encode(x), model.encoder(x - x.mean(0)))
    assert "input_mean" in model.state_dict()


def _jacobian_norms(encoder, x):
    """||dz/dx||_F^2 of each image by autograd, differentiable in the weights (the reference)."""
    return torch.stack(
        [
            torch.autograd.functional.jacobian(
                lambda v: encoder(v.unsqueeze(0)).squeeze(0), xi, create_graph=True
            )
            .square()
            .sum()
            for xi in x
        ]
    )


def test_contractive_closed_form_is_the_jacobian_norm():
    torch.manual_seed(0)
    model = build_model("contractive", (1, 3, 4), latent_dim=5, lam=0.3)
    assert model.closed_form
    x = torch.rand(4, 1, 3, 4)
    z = model.encode(x)
    expected = _jacobian_norms(model.encoder, x)
    torch.testing.assert_close(model.contraction(x), expected)
    by_hand = ((z * (1 - z)) ** 2 * (model.encoder[1][0].weight ** 2).sum(1)).sum(1)
    torch.testing.assert_close(sigmoid_layer_norm(z, model.encoder[1][0].weight), by_hand)
    out = model(x)
    assert out.reg_loss.item() == pytest.approx(0.3 * expected.mean().item(), rel=1e-5)


@pytest.mark.parametrize(
    ("hidden", "act", "latent_act"),
    [((), "relu", "tanh"), ((), "relu", None), ((6,), "elu", "sigmoid"),
     ((6, 4), "gelu", "relu"), ((5,), "leaky_relu", None)],
)  # fmt: skip
def test_contractive_deep_encoders_get_the_exact_jacobian_norm(hidden, act, latent_act):
    torch.manual_seed(1)
    model = build_model(
        "contractive", (1, 3, 4), latent_dim=3, hidden=hidden, activation=act,
        latent_activation=latent_act,
    )  # fmt: skip
    assert not model.closed_form
    x = torch.randn(4, 1, 3, 4)
    params = list(model.encoder.parameters())
    ours, ref = model.contraction(x), _jacobian_norms(model.encoder, x)
    torch.testing.assert_close(ours, ref)
    grads = torch.autograd.grad(ours.sum(), params, allow_unused=True, materialize_grads=True)
    ref_grads = torch.autograd.grad(ref.sum(), params, allow_unused=True, materialize_grads=True)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)
    with torch.no_grad():  # a held-out loss is computed without gradients
        torch.testing.assert_close(mlp_jacobian_norm(model.encoder[1], x.flatten(1)), ref)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("sparse", {"penalty": "l2"}, r"^penalty='l2' is not valid; allowed: kl, l1, topk$"),
        ("sparse", {"l1": -1.0}, r"^l1=-1.0 is not valid; expected a finite number >= 0$"),
        ("sparse", {"beta": math.inf}, r"^beta=inf is not valid; expected a finite number >= 0$"),
        ("sparse", {"rho": 0}, r"^rho=0 is not valid; expected a number between 0 and 1$"),
        ("sparse", {"rho": 1.5}, r"^rho=1.5 is not valid"),
        ("topk", {"k": 0}, r"^k=0 is not valid; expected an integer from 1 to latent_dim=100, "),
        ("topk", {"k": 101}, r"^k=101 is not valid; expected an integer from 1 to latent_dim=100"),
        ("topk", {"k": 2.5}, r"^k=2.5 is not valid"),
        ("sparse", {"penalty": "kl"}, r"^latent_activation='relu' is not valid with penalty='kl';"
         r" expected 'sigmoid'"),
        ("contractive", {"lam": -0.1}, r"^lam=-0.1 is not valid; expected a finite number >= 0$"),
    ],
)  # fmt: skip
def test_config_errors_name_the_field_the_value_and_what_is_allowed(name, kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        build_model(name, (1, 28, 28), **kwargs)
    assert "\n" not in str(err.value)


def test_sparse_config_round_trips_with_its_k_filled_in():
    config = SparseConfig(input_shape=(1, 8, 8), latent_dim=20, penalty="topk")
    assert config.k == 5
    assert SparseConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("name", ["sparse", "contractive"])
def test_one_epoch_from_the_command_line(name, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", name, "--data", "digits", "--epochs", "1", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    model = json.loads((out / "config.json").read_text())["model"]
    assert model["name"] == model["family"] == name
    assert len(json.loads((out / "history.json").read_text())) == 1
