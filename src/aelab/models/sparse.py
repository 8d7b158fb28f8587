"""Sparse autoencoders: a dense autoencoder whose code is pushed to be sparse.

``penalty`` chooses how:

* ``"l1"``: ``l1 * mean_{b,j} |z_bj|``, the mean absolute activation of the code.
* ``"kl"``: Ng's sparsity penalty (CS294A lecture notes, "Sparse autoencoder", 2011, sec. 2.3),
  ``beta * sum_j KL(rho || rho_hat_j)`` with ``rho_hat_j`` the batch mean of sigmoid unit ``j``
  and ``KL(rho || q) = rho log(rho / q) + (1 - rho) log((1 - rho) / (1 - q))``. It reads each
  unit as a probability of firing, so it needs ``latent_activation="sigmoid"``.
* ``"topk"``: no penalty; ``encode`` keeps the ``k`` largest units of each code and zeroes the
  rest (Makhzani & Frey 2013, "k-Sparse Autoencoders"; Gao et al. 2024, "Scaling and evaluating
  sparse autoencoders"), so the decoder never sees more than ``k`` non-zero units.

``recon_loss`` is a per-pixel mean, not Ng's sum over pixels, so a weight here is the paper's
divided by about half the number of pixels (Ng's ``beta=3`` is about ``1.5e-3`` at 64x64).
"""

from __future__ import annotations

import dataclasses

import torch

from aelab.utils.choices import not_one_of

from .base import check_nonnegative, is_number
from .dense import DENSE_QUICK, DENSE_SCHEDULE, DenseAutoencoder, DenseConfig
from .registry import Recipe, register_family, register_model

PENALTIES = ("kl", "l1", "topk")
ACTIVE = 1e-6  # a unit is active on an image when |z| exceeds this (a sigmoid code: 0.5)


@dataclasses.dataclass
class SparseConfig(DenseConfig):
    hidden: tuple[int, ...] = ()
    latent_dim: int = 100
    penalty: str = "l1"  # one of PENALTIES
    l1: float = 1e-3  # weight of the mean absolute code ("l1")
    rho: float = 0.05  # target mean activation of every unit ("kl")
    beta: float = 1e-3  # weight of sum_j KL(rho || rho_hat_j) ("kl")
    k: int | None = None  # units kept per code ("topk"); None: a quarter of latent_dim

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.penalty not in PENALTIES:
            raise not_one_of("penalty", self.penalty, PENALTIES)
        check_nonnegative("l1", self.l1)
        check_nonnegative("beta", self.beta)
        if self.centre_input:  # its input_mean, kept in every run's weights since aelab 0.2
            raise ValueError(
                "centre_input=True is not valid for family 'sparse': its encoder sees the "
                "centred input already"
            )
        if not is_number(self.rho) or not 0 < self.rho < 1:
            raise ValueError(f"rho={self.rho!r} is not valid; expected a number between 0 and 1")
        n = self.latent_dim
        if self.k is not None and not (
            isinstance(self.k, int) and not isinstance(self.k, bool) and 1 <= self.k <= n
        ):
            raise ValueError(
                f"k={self.k!r} is not valid; expected an integer from 1 to latent_dim={n}, "
                "or None (a quarter of latent_dim)"
            )
        if self.penalty == "topk" and self.k is None:
            self.k = max(1, n // 4)
        if self.penalty == "kl" and self.latent_activation != "sigmoid":
            raise ValueError(
                f"latent_activation={self.latent_activation!r} is not valid with penalty='kl'; "
                "expected 'sigmoid' (the KL penalty reads each unit as a probability of firing)"
            )


def top_k(z: torch.Tensor, k: int) -> torch.Tensor:
    """``z`` ``(B, D)`` with all but the ``k`` largest units of each row set to 0."""
    values, idx = torch.topk(z, k, dim=1)  # (B, k) each
    return torch.zeros_like(z).scatter(1, idx, values)


def kl_sparsity(z: torch.Tensor, rho: float) -> torch.Tensor:
    """``sum_j KL(rho || rho_hat_j)`` for a sigmoid code ``z`` ``(B, D)``, ``rho_hat = z.mean(0)``:
    the batch's mean activation of each unit."""
    rho_hat = z.mean(0).clamp(1e-6, 1 - 1e-6)  # (D,): keeps the logs finite at saturation
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum()


def active_units(z: torch.Tensor, latent_activation: str | None) -> torch.Tensor:
    """Which units of codes ``z`` ``(B, D)`` are active: ``|z| > 1e-6``, or ``z > 0.5`` for a
    sigmoid code, which is never exactly 0 (Ng's "active" is "close to 1")."""
    return z > 0.5 if latent_activation == "sigmoid" else z.abs() > ACTIVE


@register_family
class SparseAutoencoder(DenseAutoencoder):
    """A :class:`DenseAutoencoder` with a sparse code (``penalty``: l1, kl or topk).

    The encoder sees ``x - input_mean``, the training images' mean (Gao et al.'s ``b_pre``, set
    by :meth:`init_from_data`). On raw images in [0, 1] a unit's input is dominated by its
    response to the mean image, so a relu unit that starts with a negative response is off for
    every image and never learns; most of an uncentred sparse code dies that way.
    """

    config_class = SparseConfig
    family = "sparse"
    needs_data_init = True

    def __init__(self, config: SparseConfig) -> None:
        super().__init__(config)
        self.register_buffer("input_mean", torch.zeros(config.input_shape))  # (C, H, W)

    def init_from_data(self, x: torch.Tensor) -> None:
        """``input_mean`` from training images ``x`` ``(N, C, H, W)``."""
        self.input_mean.copy_(x.to(self.input_mean.device, torch.float32).mean(0))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = super().encode(x - self.input_mean)  # (B, latent_dim)
        return top_k(z, self.config.k) if self.config.penalty == "topk" else z

    def training_code(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        z, c = self.encode(x), self.config
        if c.penalty == "l1":
            return z, c.l1 * z.abs().mean()
        if c.penalty == "kl":
            return z, c.beta * kl_sparsity(z, c.rho)
        return z, None  # topk: the sparsity is in encode

    @torch.no_grad()
    def extra_metrics(self, x: torch.Tensor) -> dict[str, float]:
        """``dead_unit_fraction``: units never active on ``x``; ``mean_active_units``: active
        units per image (see :func:`active_units`)."""
        active = active_units(self.encode(x), self.config.latent_activation)  # (B, latent_dim)
        return {
            "dead_unit_fraction": float((~active.any(0)).float().mean()),
            "mean_active_units": float(active.float().sum(1).mean()),
        }


# The notebook's dense schedule (its models 1 and 2): 400 epochs of batch 80, Adam.
register_model(
    Recipe(
        "sparse",
        "sparse",
        "dense, 100 relu code units with an L1 penalty on the code",
        {"hidden": (), "latent_dim": 100, "latent_activation": "relu", "penalty": "l1"},
        DENSE_SCHEDULE,
        quick=DENSE_QUICK,
    )
)
register_model(
    Recipe(
        "topk",
        "sparse",
        "dense, 100 linear code units of which each image keeps its 25 largest (k-sparse)",
        {"hidden": (), "latent_dim": 100, "latent_activation": None, "penalty": "topk"},
        DENSE_SCHEDULE,
        quick=DENSE_QUICK,
    )
)
