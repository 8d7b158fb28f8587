"""Variational autoencoders (Kingma & Welling, 2014, "Auto-Encoding Variational Bayes").

The encoder gives the mean and log-variance of a diagonal Gaussian posterior; the code the decoder
sees is sampled from it with the reparameterisation trick. The loss is the notebook's:
per-pixel MSE plus ``beta`` times the KL divergence to N(0, I) averaged over latent units.
The notebook divides that KL by 800 (its data set size) and by 2, so its ``beta`` is 1/1600.
``encode`` returns the posterior mean, the notebook's ``v_encoder``.

The KL weight can follow a schedule (:meth:`_Variational.set_epoch`): a linear warm-up from 0 to
``beta`` over ``warmup`` epochs (Bowman et al., 2016, "Generating Sentences from a Continuous
Space"), and a capacity target (Burgess et al., 2018, "Understanding disentangling in
beta-VAE"): ``beta * |KL - C|``, the KL per image held near ``C`` nats, with ``C`` rising linearly
to ``capacity`` over ``capacity_epochs``. ``extra_metrics`` reports posterior collapse (active
units, KL per image) and the importance-sampled likelihood (:mod:`aelab.models.likelihood`).
The ``beta-vae`` recipe is Higgins et al., 2017, "beta-VAE: Learning Basic Visual Concepts with a
Constrained Variational Framework".
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .base import BaseAutoencoder, check_nonnegative, flat_size
from .conv import CONV_QUICK, ConvConfig, conv_decoder, conv_encoder_body
from .dense import DenseConfig, mlp
from .layers import FullPrecisionLinear
from .likelihood import log_likelihood
from .registry import QuickBudget, Recipe, register_family, register_model

NOTEBOOK_BETA = 1 / 1600
ACTIVE_KL = 0.01  # nats: a unit whose mean KL is below this carries (almost) nothing about x
NLL_SAMPLES = 100  # importance samples per image for extra_metrics' nll, at most (nll_budget)


class GaussianEncoder(nn.Module):
    """``body`` features -> ``(mu, logvar)``, each ``(B, latent_dim)``."""

    def __init__(self, body: nn.Module, width: int, latent_dim: int, full: bool = True) -> None:
        super().__init__()
        self.body = body
        # code layers: full precision under autocast (models.layers) unless they read the image
        linear = FullPrecisionLinear if full else nn.Linear
        self.mu = linear(width, latent_dim)
        self.logvar = linear(width, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.logvar(h)


def _check_schedule(c: VAEConfig | ConvVAEConfig) -> None:
    check_nonnegative("beta", c.beta)
    for name in ("warmup", "capacity_epochs"):
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}={value!r} is not valid; expected an integer >= 0 (epochs)")
    cap = c.capacity
    check_nonnegative("capacity", cap, "nats")
    if c.capacity_epochs and not cap:
        raise ValueError(
            f"capacity_epochs={c.capacity_epochs} needs a capacity > 0 to rise to; "
            "set capacity (nats) or capacity_epochs=0"
        )


@dataclasses.dataclass
class VAEConfig(DenseConfig):
    hidden: tuple[int, ...] = (512,)
    latent_dim: int = 2
    latent_activation: str | None = None  # unused: mu and logvar are linear
    beta: float = NOTEBOOK_BETA  # weight of the KL term
    warmup: int = 0  # epochs over which the KL weight rises linearly from 0 to beta; 0: none
    capacity: float = 0.0  # target KL per image C in nats (Burgess); 0: the plain KL
    capacity_epochs: int = 0  # epochs over which C rises linearly to capacity; 0: at once

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_schedule(self)


@dataclasses.dataclass
class ConvVAEConfig(ConvConfig):
    latent_dim: int = 16
    latent_activation: str | None = None  # unused
    beta: float = NOTEBOOK_BETA
    warmup: int = 0  # as VAEConfig's
    capacity: float = 0.0
    capacity_epochs: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_schedule(self)


def kl_per_unit(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z_j | x) || N(0, 1)) in nats of each image and unit, ``(B, d)``, for the diagonal
    Gaussian posterior ``(mu, logvar)``."""
    return -0.5 * (1 + logvar - mu.square() - logvar.exp())


def _ramp(epoch: int | None, epochs: int) -> float:
    """0 at epoch 0 rising linearly to 1 at ``epochs``; 1 with no ramp or no epoch set."""
    return 1.0 if epochs == 0 or epoch is None else min(1.0, epoch / epochs)


class _Variational(BaseAutoencoder):
    variational = True
    has_prior = True
    # Codes decoded for extra_metrics' nll, which draws nll_budget // N samples per image (at
    # least 1, at most NLL_SAMPLES): 4,000 take about 1 s through the dense VAE on 64x64 images on
    # a 2-core CPU (k=1000 on 40 images took 10 s, so the estimate stops at k=100 there)
    nll_budget: ClassVar[int] = 4000
    _epoch: int | None = None  # set_epoch's; None (never trained here): the schedule's end

    def set_epoch(self, epoch: int) -> None:
        """Move the KL schedule to ``epoch`` (from 0); the Trainer calls it before each epoch."""
        self._epoch = epoch

    @property
    def kl_weight(self) -> float:
        """The weight of the KL term now: ``beta``, warmed up linearly over ``warmup`` epochs."""
        return self.config.beta * _ramp(self._epoch, self.config.warmup)

    @property
    def kl_target(self) -> float:
        """The capacity ``C`` now, in nats per image: ``capacity``, reached at
        ``capacity_epochs``."""
        return self.config.capacity * _ramp(self._epoch, self.config.capacity_epochs)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x), each ``(B, latent_dim)``."""
        return self.encoder(self.centred(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.centred(x))[0]

    def training_code(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        mu, logvar = self.encoder(self.centred(x))
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterisation trick
        kl = kl_per_unit(mu, logvar)  # (B, d)
        if self.config.capacity:  # |KL - C| per image, rescaled like the mean over units
            return z, self.kl_weight * (kl.sum(1).mean() - self.kl_target).abs() / kl.shape[1]
        return z, self.kl_weight * kl.mean()

    def sample_prior(self, n: int, random_state: np.random.Generator) -> np.ndarray:
        """``n`` codes from the prior N(0, I), float64 ``(n, latent_dim)``."""
        return random_state.standard_normal((n, self.latent_dim))

    @torch.no_grad()
    def extra_metrics(self, x: torch.Tensor) -> dict[str, float]:
        """Posterior collapse and likelihood on held-out images ``x`` ``(N, C, H, W)``.

        ``active_units``: units whose KL(q(z_j | x) || N(0, 1)), averaged over ``x``, exceeds
        :data:`ACTIVE_KL` nats; ``kl_total`` and ``kl_max_unit``: the sum and the largest of those
        per-unit KLs (nats per image); ``nll``: ``-log p(x)`` in nats per image, importance
        sampled (:func:`~aelab.models.likelihood.log_likelihood`, a fixed seed) under the Gaussian
        decoder the loss implies, with ``nll_samples`` samples per image (``nll_budget`` codes in
        all, at most :data:`NLL_SAMPLES` per image); no ``nll`` when ``beta`` is 0.
        """
        if not len(x):
            return {}
        posterior = [self.posterior(xb) for xb in x.split(512)]
        mu, logvar = (torch.cat(p) for p in zip(*posterior, strict=True))
        kl = kl_per_unit(mu, logvar).mean(0)  # (d,)
        out = {
            "active_units": int((kl > ACTIVE_KL).sum()),
            "kl_total": float(kl.sum()),
            "kl_max_unit": float(kl.max()),
        }
        if self.config.beta > 0:
            k = max(1, min(NLL_SAMPLES, self.nll_budget // len(x)))
            g = torch.Generator(device=x.device).manual_seed(0)
            out["nll"] = float(-log_likelihood(self, x, k, generator=g).mean())
            out["nll_samples"] = k
        return out


@register_family
class VAE(_Variational):
    """Dense VAE (notebook model 5: 512 relu units, a 2-D latent, sigmoid output)."""

    config_class = VAEConfig
    family = "vae"

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        c = config
        n = flat_size(c.input_shape)
        body = nn.Sequential(nn.Flatten(), mlp((n, *c.hidden), c.activation, c.activation))
        width = c.hidden[-1] if c.hidden else n
        self.encoder = GaussianEncoder(body, width, c.latent_dim, full=bool(c.hidden))
        self.decoder = nn.Sequential(
            mlp(
                (c.latent_dim, *reversed(c.hidden), n),
                c.activation,
                c.output_activation,
                full_first=bool(c.hidden),
            ),
            nn.Unflatten(1, c.input_shape),
        )
        self.reset_parameters()


@register_family
class ConvVAE(_Variational):
    """The convolutional encoder and decoder of :class:`ConvAutoencoder` around a Gaussian code."""

    config_class = ConvVAEConfig
    family = "conv-vae"
    input_layout = "image"
    nll_budget = 160  # its decoder costs ~50x the dense one's on 64x64: k=4 on 40 faces, ~2 s

    def __init__(self, config: ConvVAEConfig) -> None:
        super().__init__(config)
        body, width = conv_encoder_body(config)
        self.encoder = GaussianEncoder(body, width, config.latent_dim)
        self.decoder = conv_decoder(config)
        self.reset_parameters()


register_model(
    Recipe(
        "vae",
        "vae",
        "dense variational, 512 relu units, 2-D latent (notebook model 5)",
        {"hidden": (512,), "latent_dim": 2, "beta": NOTEBOOK_BETA},
        {"epochs": 200, "batch_size": 32, "optimizer": "rmsprop"},
        quick=QuickBudget(images=150_000, min_epochs=15, max_epochs=200),
        autocast_bf16=True,  # seed schedule, seeds 0-2: held-out MSE 0.993x fp32's, within spread
    )
)
register_model(
    Recipe(
        "conv-vae",
        "conv-vae",
        "convolutional variational, the conv model's layers around a 16-D Gaussian code",
        {"channels": (32, 64, 128), "latent_dim": 16, "beta": NOTEBOOK_BETA},
        {"epochs": 100, "batch_size": 32, "optimizer": "adam"},
        quick=CONV_QUICK,
    )
)
register_model(
    Recipe(
        "beta-vae",
        "vae",
        "beta-VAE (Higgins' beta=4 on 64x64): dense variational, 10-D code, a 10-epoch KL warm-up",
        # On 64x64 faces with d = 10 this beta = 2 d / D makes the loss the ELBO of a decoder
        # N(x_hat, I) (aelab.models.likelihood): 4 times the KL weight of a decoder with
        # sigma = 1/2 (a Bernoulli's curvature at p = 1/2), so Higgins' beta = 4
        {"hidden": (512,), "latent_dim": 10, "beta": 2 * 10 / (64 * 64), "warmup": 10},
        {"epochs": 100, "batch_size": 32, "optimizer": "adam"},
        quick=QuickBudget(images=150_000, min_epochs=20, max_epochs=200),  # past the warm-up
    )
)
