"""The contract every autoencoder family shares.

A model maps images ``x`` of shape ``(B, *input_shape)`` to codes ``z`` of shape ``(B, latent_dim)``
and back. ``forward(x, target)`` returns a :class:`ModelOutput` whose ``loss`` is all a trainer
needs; ``recon_loss`` and ``reg_loss`` are its parts. Denoising is not a model: the trainer feeds a
corrupted ``x`` and the clean ``target``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aelab.utils.choices import not_one_of
from aelab.utils.fields import from_fields

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
}


class ModelOutput(NamedTuple):
    loss: torch.Tensor  # scalar: what the optimizer minimises
    recon_loss: torch.Tensor  # scalar: per-pixel mean squared error
    reg_loss: torch.Tensor  # scalar: the weighted regulariser (KL for a VAE, 0 otherwise)
    x_hat: torch.Tensor  # (B, *input_shape)
    z: torch.Tensor  # (B, latent_dim): the code the decoder saw


@dataclasses.dataclass
class ModelConfig:
    """Hyper-parameters shared by every family; subclasses add their own fields.

    ``input_shape`` is ``(C, H, W)`` and is filled in from the data, never by hand.
    """

    input_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 32
    output_activation: str | None = "sigmoid"

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(
                f"input_shape={self.input_shape} is not valid; expected (channels, height, width) "
                "with every size >= 1"
            )
        if not isinstance(self.latent_dim, int) or isinstance(self.latent_dim, bool):
            raise ValueError(
                f"latent_dim={self.latent_dim!r} is not valid; expected an integer >= 1"
            )
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim={self.latent_dim} is not valid; expected an integer >= 1")
        for name in ("output_activation",):
            _check_activation(name, getattr(self, name), allow_none=True)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """The inverse of :meth:`to_dict`; unknown fields are an error naming them."""
        return from_fields(cls, d)


def _check_activation(name: str, value: str | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value not in ACTIVATIONS:
        allowed = sorted(ACTIVATIONS) + (["none"] if allow_none else [])
        raise not_one_of(name, value, allowed)


def _check_flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not valid; expected True or False")


def activation(name: str | None) -> nn.Module:
    return nn.Identity() if name is None else ACTIVATIONS[name]()


class Centred(nn.Module):
    """``x - mean``: an encoder's input centred on the training images' mean, ``mean`` a buffer
    ``(C, H, W)`` set before the first epoch (:meth:`BaseAutoencoder.init_from_data`).

    Images share much: faces a mean face, digits a dark border. Uncentred, each unit of a layer
    answers mostly to that shared part, the same for every image, so a ReLU unit that starts
    negative is off for nearly all of them; Adam's first steps, about the learning rate on each
    of thousands of weights of one sign, switch it off for all, and it never learns again. On
    Olivetti's quick schedule 14.3 of the deep model's 20 code units died so, and 16.3 of conv's
    32 (mean of 3 seeds; benchmarks/dead_units.py).
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))  # (C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.mean


class BaseAutoencoder(nn.Module):
    """Base class: an ``encoder`` and a ``decoder`` module and the loss that joins them.

    Subclasses build ``self.encoder`` (``x -> z``) and ``self.decoder`` (``z -> x_hat``) from
    ``config`` and may override :meth:`forward` to add a regulariser.
    """

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    family: ClassVar[str] = ""  # the name config.json records (models.registry.FAMILIES)

    # Capabilities: what the CLI, the estimator and the report ask of a family (never its name).
    input_layout: ClassVar[str] = "any"  # "any": any (C, H, W), a table as (1, 1, n); "image":
    #   spatial grids only (convolutions): the estimator refuses 2-D tables for these
    variational: ClassVar[bool] = False  # posterior(x) -> (mu, logvar); the ELBO as a score
    has_prior: ClassVar[bool] = False  # sample_prior(n, rng) draws codes that decode to new
    #   samples (the estimator's sample(), the explorer's random code)
    discrete_codes: ClassVar[bool] = False  # codes index a codebook: no random or PCA codes
    draws_weights: ClassVar[bool] = False  # weight_images(): first and last layers as images
    exportable: ClassVar[bool] = True  # encode() is a network a graph can hold (aelab export);
    #   False where it is a search (gradient steps on the decoder's error)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # the encoder's input centred, where the config asks (dense and conv families)
        centre = getattr(config, "centre_input", False)
        self.centre: Centred | None = Centred(config.input_shape) if centre else None

    @property
    def needs_data_init(self) -> bool:
        """Whether the Trainer calls :meth:`init_from_data` with training images before the
        first epoch: for a centred input, and in families that set more from data (a basis
        that starts at PCA's)."""
        return self.centre is not None

    def centred(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as the encoder takes it: minus the training mean where the input is centred."""
        return x if self.centre is None else self.centre(x)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.config.input_shape

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``z`` of shape ``(B, latent_dim)`` for images ``x`` of shape ``(B, C, H, W)``."""
        return self.encoder(self.centred(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``x_hat`` ``(B, C, H, W)`` for codes ``z`` ``(B, latent_dim)``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> ModelOutput:
        """Reconstruct ``x``; the loss compares with ``target`` (``x`` itself by default) and
        adds the family's regulariser (:meth:`training_code`)."""
        target = x if target is None else target
        z, reg = self.training_code(x)
        x_hat = self.decode(z)
        recon = F.mse_loss(x_hat, target)
        if reg is None:
            return ModelOutput(recon, recon, recon.new_zeros(()), x_hat, z)
        return ModelOutput(recon + reg, recon, reg, x_hat, z)

    def training_code(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The code ``(B, latent_dim)`` the decoder sees while training (a variational family
        samples it, a quantised one snaps it to its codebook) and the weighted regulariser the
        family adds to the reconstruction error (None: none). By default the code is
        :meth:`encode`'s and there is no regulariser."""
        return self.encode(x), None

    def sample_prior(self, n: int, random_state: np.random.Generator) -> np.ndarray:
        """``n`` codes ``(n, latent_dim)`` drawn from the family's prior, which decode to new
        samples; ``random_state`` is a numpy ``Generator`` or ``RandomState``. Only for families
        with ``has_prior``."""
        raise NotImplementedError(
            f"{type(self).__name__} has no prior to draw codes from (has_prior is False)"
        )

    def export_encode(self, x: torch.Tensor, logvar: bool = False) -> tuple[torch.Tensor, ...]:
        """What an exported encoder graph computes from ``x``: ``(z,)``, or with ``logvar`` a
        variational family's ``(mu, logvar)``. A family whose :meth:`encode` freezes the batch
        size when traced writes it here without doing so."""
        if logvar:
            if not self.variational:
                raise ValueError(
                    f"logvar=True is not valid for family {self.family!r}: not variational"
                )
            return tuple(self.posterior(x))
        return (self.encode(x),)

    def reset_parameters(self) -> None:
        """Glorot-uniform weights and zero biases, as Keras initialises its layers.

        PyTorch's default (He-uniform with a=sqrt(5)) trains the notebook's sigmoid models
        noticeably slower at the notebook's learning rates.
        """
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def init_from_data(self, x: torch.Tensor) -> None:
        """Set weights from training images ``x`` ``(N, C, H, W)`` before training, where
        ``needs_data_init``: by default the centred input's mean."""
        if self.centre is not None:
            self.centre.mean.copy_(x.to(self.centre.mean.device, torch.float32).mean(0))

    def set_epoch(self, epoch: int) -> None:
        """Training progress, for a loss that follows a schedule (a VAE's KL warm-up): the Trainer
        calls it before each epoch, counted from 0 (after a resume too, so the schedule is a
        function of the epoch alone); nothing by default."""

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def weight_images(self) -> tuple[np.ndarray, np.ndarray]:
        """First-layer encoder and last-layer decoder weights as images ``(units, C, H, W)``,
        for families with ``draws_weights``."""
        raise NotImplementedError(
            f"{type(self).__name__} has no weights to draw as images (draws_weights is False)"
        )

    @torch.no_grad()
    def extra_metrics(self, x: torch.Tensor) -> dict[str, float]:
        """Metrics of this family's own on held-out images ``x`` ``(B, C, H, W)``, which the
        report adds to ``metrics.json`` (e.g. a sparse code's active units); none by default."""
        return {}


def is_number(value: object) -> bool:
    """A finite real number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_nonnegative(name: str, value: object, unit: str = "") -> None:
    """A weight, a KL target: a finite number >= 0, else one line naming ``name``."""
    if not is_number(value) or value < 0:
        suffix = f" ({unit})" if unit else ""
        raise ValueError(f"{name}={value!r} is not valid; expected a finite number >= 0{suffix}")


def flat_size(shape: tuple[int, ...]) -> int:
    return math.prod(shape)
