"""Variational autoencoders (Kingma & Welling, 2014, "Auto-Encoding Variational Bayes").

The encoder gives the mean and log-variance of a diagonal Gaussian posterior; the code the decoder
sees is sampled from it with the reparameterisation trick. The loss is the notebook's:
per-pixel MSE plus ``beta`` times the KL divergence to N(0, I) averaged over latent units.
The notebook divides that KL by 800 (its data set size) and by 2, so its ``beta`` is 1/1600.
``encode`` returns the posterior mean, the notebook's ``v_encoder``.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .base import BaseAutoencoder, ModelOutput, flat_size
from .conv import CONV_QUICK, ConvConfig, conv_decoder, conv_encoder_body
from .dense import DenseConfig, mlp
from .registry import QuickBudget, Recipe, register_family, register_model

NOTEBOOK_BETA = 1 / 1600


class GaussianEncoder(nn.Module):
    """``body`` features -> ``(mu, logvar)``, each ``(B, latent_dim)``."""

    def __init__(self, body: nn.Module, width: int, latent_dim: int) -> None:
        super().__init__()
        self.body = body
        self.mu = nn.Linear(width, latent_dim)
        self.logvar = nn.Linear(width, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.logvar(h)


def _check_beta(beta: float) -> None:
    if not isinstance(beta, (int, float)) or not beta >= 0:
        raise ValueError(f"beta={beta!r} is not valid; expected a number >= 0")


@dataclasses.dataclass
class VAEConfig(DenseConfig):
    hidden: tuple[int, ...] = (512,)
    latent_dim: int = 2
    latent_activation: str | None = None  # unused: mu and logvar are linear
    beta: float = NOTEBOOK_BETA  # weight of the KL term

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_beta(self.beta)


@dataclasses.dataclass
class ConvVAEConfig(ConvConfig):
    latent_dim: int = 16
    latent_activation: str | None = None  # unused
    beta: float = NOTEBOOK_BETA

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_beta(self.beta)


class _Variational(BaseAutoencoder):
    variational = True

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x), each ``(B, latent_dim)``."""
        return self.encoder(x)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[0]

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> ModelOutput:
        target = x if target is None else target
        mu, logvar = self.encoder(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterisation trick
        x_hat = self.decoder(z)
        recon = F.mse_loss(x_hat, target)
        kl = -0.5 * torch.mean(1 + logvar - mu.square() - logvar.exp())
        reg = self.config.beta * kl
        return ModelOutput(recon + reg, recon, reg, x_hat, z)


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
        self.encoder = GaussianEncoder(body, c.hidden[-1] if c.hidden else n, c.latent_dim)
        self.decoder = nn.Sequential(
            mlp((c.latent_dim, *reversed(c.hidden), n), c.activation, c.output_activation),
            nn.Unflatten(1, c.input_shape),
        )
        self.reset_parameters()


@register_family
class ConvVAE(_Variational):
    """The convolutional encoder and decoder of :class:`ConvAutoencoder` around a Gaussian code."""

    config_class = ConvVAEConfig
    family = "conv-vae"
    input_layout = "image"

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
