"""The variational families' extras: the KL warm-up and capacity schedules (beta-VAE), the
posterior-collapse diagnostics, and the importance-sampled log-likelihood."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from aelab.cli import main
from aelab.models import build_model
from aelab.models.likelihood import log_likelihood, observation_sigma
from aelab.models.variational import kl_per_unit
from aelab.runs.run import load_run
from aelab.training.config import TrainConfig
from aelab.training.trainer import Trainer


def _rand(n, shape, seed=0):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def _hand_kl(mu, logvar):  # (B, d): 0.5 (mu^2 + sigma^2 - 1 - log sigma^2)
    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar)


def _linear_encoder(model, w_mu, b_mu, b_logvar):
    """Set a ``hidden=()`` VAE's posterior to mu = w_mu x + b_mu, logvar = b_logvar."""
    with torch.no_grad():
        model.encoder.mu.weight.copy_(torch.as_tensor(w_mu, dtype=torch.float32))
        model.encoder.mu.bias.copy_(torch.as_tensor(b_mu, dtype=torch.float32))
        model.encoder.logvar.weight.zero_()
        model.encoder.logvar.bias.copy_(torch.as_tensor(b_logvar, dtype=torch.float32))


# -- the schedules -------------------------------------------------------------------------------


def test_kl_weight_warms_up_linearly_from_zero_to_beta():
    model = build_model("vae", (1, 2, 3), latent_dim=2, hidden=(4,), beta=2.0, warmup=4)
    x = _rand(5, (1, 2, 3))
    assert model.kl_weight == 2.0  # never set: a trained (or loaded) model's full weight
    mu, logvar = model.posterior(x)
    kl = _hand_kl(mu, logvar).mean()
    for epoch, weight in [(0, 0.0), (1, 0.5), (2, 1.0), (3, 1.5), (4, 2.0), (9, 2.0)]:
        model.set_epoch(epoch)
        assert model.kl_weight == weight
        out = model(x)
        torch.testing.assert_close(out.reg_loss, weight * kl)
        torch.testing.assert_close(out.loss, out.recon_loss + out.reg_loss)
    unscheduled = build_model("vae", (1, 2, 3), latent_dim=2, hidden=(4,), beta=2.0)
    unscheduled.set_epoch(0)
    assert unscheduled.kl_weight == 2.0 and unscheduled.kl_target == 0.0


def test_capacity_loss_is_beta_times_the_distance_of_the_kl_per_image_from_c():
    kwargs = dict(latent_dim=2, hidden=(4,), beta=3.0, capacity=5.0, capacity_epochs=10)
    model = build_model("vae", (1, 2, 3), **kwargs)
    x = _rand(6, (1, 2, 3))
    mu, logvar = model.posterior(x)
    kl_image = _hand_kl(mu, logvar).sum(1).mean()  # nats per image, a little under 1 here
    for epoch, c in [(0, 0.0), (4, 2.0), (10, 5.0), (20, 5.0)]:
        model.set_epoch(epoch)
        assert model.kl_target == c
        expected = 3.0 * abs(kl_image - c) / 2  # / d: the scale of the plain loss's mean KL
        torch.testing.assert_close(model(x).reg_loss, expected)
    # at C = 0 the capacity loss is the plain one
    plain = build_model("vae", (1, 2, 3), latent_dim=2, hidden=(4,), beta=3.0)
    plain.load_state_dict(model.state_dict())
    model.set_epoch(0)
    torch.testing.assert_close(model(x).reg_loss, plain(x).reg_loss)
    # with a warm-up too, the weight and the target each follow their own schedule
    both = build_model("conv-vae", (1, 8, 8), latent_dim=3, channels=(4,), beta=3.0, warmup=2,
                       capacity=6.0, capacity_epochs=3)  # fmt: skip
    both.set_epoch(1)
    assert (both.kl_weight, both.kl_target) == (1.5, 2.0)
    x = _rand(4, (1, 8, 8))
    mu, logvar = both.posterior(x)
    expected = 1.5 * abs(_hand_kl(mu, logvar).sum(1).mean() - 2.0) / 3
    torch.testing.assert_close(both(x).reg_loss, expected)


def test_the_trainer_sets_the_epoch_before_each_one_from_zero_and_after_a_resume():
    seen = []
    model = build_model("beta-vae", (1, 4, 4), hidden=(8,))
    model.set_epoch = seen.append
    x = _rand(20, (1, 4, 4))
    trainer = Trainer(model, TrainConfig(epochs=2, batch_size=10, device="cpu"))
    trainer.fit(x, progress=False)
    state = trainer.state_dict()
    resumed = Trainer(model, TrainConfig(epochs=4, batch_size=10, device="cpu"))
    resumed.load_state_dict(state)
    resumed.fit(x, progress=False)
    assert seen == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"warmup": -1}, r"warmup=-1 is not valid; expected an integer >= 0 \(epochs\)"),
        ({"warmup": 2.5}, r"warmup=2.5 is not valid; expected an integer >= 0"),
        ({"capacity": -1.0}, r"capacity=-1.0 is not valid; expected a finite number >= 0 \(nats"),
        ({"capacity": math.inf}, r"capacity=inf is not valid; expected a finite number >= 0"),
        ({"capacity": "25"}, r"capacity='25' is not valid"),
        ({"capacity_epochs": -2}, r"capacity_epochs=-2 is not valid; expected an integer >= 0"),
        ({"capacity_epochs": 5}, r"capacity_epochs=5 needs a capacity > 0 to rise to; set"),
        ({"beta": -1}, r"beta=-1 is not valid; expected a finite number >= 0"),
    ],
)
@pytest.mark.parametrize("name", ["vae", "conv-vae", "beta-vae"])
def test_schedule_errors(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, (1, 8, 8), **kwargs)


# -- posterior collapse ----------------------------------------------------------------------


def test_kl_per_unit_and_active_units_against_the_closed_form_by_hand():
    mu = torch.tensor([[1.0, 0.0], [-1.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(2)], [0.0, math.log(2)]])
    # unit 0: 0.5 mu^2 = 0.5 twice; unit 1 (variance 2): 0.5 (mu^2 + 1 - ln 2)
    expected = [[0.5, 0.5 * (1 - math.log(2))], [0.5, 0.5 * (5 - math.log(2))]]
    torch.testing.assert_close(kl_per_unit(mu, logvar), torch.tensor(expected))

    model = build_model("vae", (1, 1, 2), latent_dim=2, hidden=())  # mu = W x + b, body = id
    x = mu.reshape(2, 1, 1, 2)
    _linear_encoder(model, torch.eye(2), [0, 0], [0, math.log(2)])
    m = model.extra_metrics(x)
    unit1 = 0.5 * (0.5 * (1 - math.log(2)) + 0.5 * (5 - math.log(2)))  # 1.1534
    assert m["active_units"] == 2
    assert m["kl_total"] == pytest.approx(0.5 + unit1, rel=1e-6)
    assert m["kl_max_unit"] == pytest.approx(unit1, rel=1e-6)
    # KL = 0.5 mu^2 for a constant mu with unit variance: 0.005 nats is collapsed, 0.01125 is not
    for b, active in [(0.0, 0), (0.1, 0), (0.15, 1)]:
        _linear_encoder(model, torch.zeros(2, 2), [b, 0], [0, 0])
        m = model.extra_metrics(x)
        assert m["active_units"] == active
        assert m["kl_total"] == pytest.approx(0.5 * b**2, abs=1e-7)
    assert m["nll_samples"] == 100 and math.isfinite(m["nll"])
    assert "nll" not in build_model("vae", (1, 1, 2), beta=0.0).extra_metrics(x)


# -- the importance-sampled log-likelihood -------------------------------------------------------


def test_the_observation_model_is_the_one_the_training_loss_implies():
    """-ELBO = D / (2 sigma^2) * loss + (D / 2) log(2 pi sigma^2), for the loss's own z."""
    model = build_model("vae", (1, 4, 4), latent_dim=3, hidden=(8,), beta=0.3)
    x = _rand(5, (1, 4, 4))
    sigma, n = observation_sigma(model), 16
    assert sigma**2 == pytest.approx(0.3 * n / (2 * 3))
    out = model(x)
    mu, logvar = model.posterior(x)
    log_px_z = Normal(out.x_hat, sigma).log_prob(x).sum((1, 2, 3))
    elbo = (log_px_z - _hand_kl(mu, logvar).sum(1)).mean()
    expected = n / (2 * sigma**2) * out.loss + n / 2 * math.log(2 * math.pi * sigma**2)
    torch.testing.assert_close(-elbo, expected)


def test_one_sample_is_the_elbo_of_that_sample():
    model = build_model("conv-vae", (1, 8, 8), latent_dim=3, channels=(4,), beta=0.1)
    x = _rand(5, (1, 8, 8))
    ll = log_likelihood(model, x, 1, generator=torch.Generator().manual_seed(1))
    eps = torch.randn((1, 5, 3), generator=torch.Generator().manual_seed(1))[0]
    with torch.no_grad():
        mu, logvar = model.posterior(x)
        std = torch.exp(0.5 * logvar)
        z = mu + std * eps
        log_px_z = Normal(model.decode(z), observation_sigma(model)).log_prob(x).sum((1, 2, 3))
        elbo = log_px_z + Normal(0, 1).log_prob(z).sum(1) - Normal(mu, std).log_prob(z).sum(1)
    assert ll.shape == (5,) and ll.dtype == torch.float64
    torch.testing.assert_close(ll, elbo.double(), rtol=1e-5, atol=1e-4)


def test_the_estimate_rises_with_k_on_average():
    model = build_model("vae", (1, 4, 4), latent_dim=3, hidden=(8,))
    x = _rand(200, (1, 4, 4))
    g = torch.Generator().manual_seed(0)
    # a narrow decoder makes the untrained posterior a poor proposal: gaps of ~30 and ~15 nats,
    # where the estimates at one k vary by ~0.5 from seed to seed
    means = [
        float(log_likelihood(model, x, k, sigma=0.1, generator=g).mean()) for k in (1, 10, 200)
    ]
    assert means[0] < means[1] < means[2], means
    # split into passes of a few codes at a time, the estimate is the same in distribution
    small = log_likelihood(model, x, 200, sigma=0.1, batch_size=7, generator=g)
    assert abs(float(small.mean()) - means[2]) < 0.05 * abs(means[2] - means[0])


def test_a_posterior_equal_to_the_prior_under_a_constant_decoder_is_exact():
    model = build_model("vae", (1, 3, 3), latent_dim=2, hidden=(5,), beta=0.2)
    with torch.no_grad():
        for layer in (model.encoder.mu, model.encoder.logvar):  # q(z | x) = N(0, I) = p(z)
            layer.weight.zero_()
            layer.bias.zero_()
        model.decoder[0][0].weight.zero_()  # x_hat no longer depends on z
        x_hat = model.decode(torch.zeros(1, 2))
    x = _rand(4, (1, 3, 3))
    exact = Normal(x_hat, observation_sigma(model)).log_prob(x).sum((1, 2, 3)).double()
    for k in (1, 7):
        torch.testing.assert_close(log_likelihood(model, x, k), exact, rtol=1e-6, atol=1e-5)


def test_the_exact_posterior_of_a_linear_gaussian_decoder_gives_the_exact_marginal():
    """x = W z + b + noise with orthogonal columns of W: q can be the true posterior, every
    importance weight is p(x), and the estimate is exact for any k."""
    model = build_model(
        "vae", (1, 1, 4), latent_dim=2, hidden=(), beta=0.25, output_activation=None
    )
    sigma2 = observation_sigma(model) ** 2  # 0.25 * 4 / (2 * 2)
    assert sigma2 == pytest.approx(0.25)
    w = torch.tensor([[1.0, 0.0], [1.0, 0.5], [0.0, 0.0], [1.0, -0.5]])  # (D, d), W^T W diagonal
    b = torch.tensor([0.2, -0.1, 0.3, 0.0])
    post_var = 1 / (1 + (w * w).sum(0) / sigma2)  # (d,): (I + W^T W / sigma^2)^-1
    with torch.no_grad():
        model.decoder[0][0].weight.copy_(w)
        model.decoder[0][0].bias.copy_(b)
    gain = post_var[:, None] * w.T / sigma2  # (d, D): mu = gain (x - b)
    _linear_encoder(model, gain, -gain @ b, post_var.log())
    x = _rand(6, (1, 1, 4))
    marginal = MultivariateNormal(b, w @ w.T + sigma2 * torch.eye(4))
    exact = marginal.log_prob(x.reshape(6, 4)).double()
    for k in (1, 20):
        torch.testing.assert_close(log_likelihood(model, x, k), exact, rtol=1e-5, atol=1e-5)


def test_likelihood_errors():
    model = build_model("vae", (1, 4, 4), latent_dim=2, hidden=(4,))
    x = _rand(2, (1, 4, 4))
    with pytest.raises(ValueError, match=r"k=0 is not valid; expected an integer >= 1"):
        log_likelihood(model, x, 0)
    with pytest.raises(ValueError, match=r"batch_size=0 is not valid"):
        log_likelihood(model, x, 2, batch_size=0)
    with pytest.raises(ValueError, match=r"sigma=0.0 is not valid; expected a finite number > 0"):
        log_likelihood(model, x, 2, sigma=0.0)
    flat = build_model("vae", (1, 4, 4), latent_dim=2, hidden=(4,), beta=0.0)
    with pytest.raises(ValueError, match=r"beta=0.0 implies a noise-free decoder .* pass sigma"):
        log_likelihood(flat, x, 2)
    assert log_likelihood(flat, x, 2, sigma=0.1).shape == (2,)
    with pytest.raises(TypeError, match=r"DenseAutoencoder has no posterior"):
        log_likelihood(build_model("deep", (1, 4, 4)), x, 2)


# -- the recipe, end to end ----------------------------------------------------------------------


def test_a_resumed_beta_vae_run_ends_as_an_uninterrupted_one(tmp_path):
    """In the warm-up (10 epochs) the KL weight changes every epoch: a resumed run must pick the
    schedule up at its epoch."""
    base = ["train", "beta-vae", "--data", "digits", "--quiet", "--hidden", "64"]
    base += ["--batch-size", "256"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main([*base, "--epochs", "2", "--out", str(full)]) == 0
    assert main([*base, "--epochs", "1", "--out", str(part)]) == 0
    assert main(["train", "beta-vae", "--out", str(part), "--resume", "--epochs", "2",
                 "--quiet"]) == 0  # fmt: skip
    a, b = load_run(full), load_run(part)
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    assert a.model.config.warmup == 10 and a.model.config.latent_dim == 10
