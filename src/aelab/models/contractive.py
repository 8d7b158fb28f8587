"""Contractive autoencoders (Rifai et al. 2011, "Contractive Auto-Encoders: Explicit Invariance
During Feature Extraction").

A dense autoencoder whose loss adds ``lam * ||J_f(x)||_F^2``, the squared Frobenius norm of the
encoder's Jacobian ``J_f(x) = dz/dx`` ``(latent_dim, C*H*W)``, averaged over the batch: the code
is made insensitive to small changes of the input in every direction the data does not need.

For the paper's encoder, one sigmoid layer ``h = sigmoid(W x + b)`` (``hidden=()``), the norm
has a closed form (the paper's eq. 5): ``sum_j (h_j (1 - h_j))^2 sum_i W_ji^2``. A deeper encoder
``z = f_L(W_L ... f_1(W_1 x))`` has ``J = D_L W_L ... D_1 W_1`` with ``D_l = diag(f_l'(a_l))``;
its norm is computed exactly as ``||M W_1||_F^2 = tr(M (W_1 W_1^T) M^T)`` with
``M = D_L W_L ... D_1`` ``(latent_dim, hidden[0])``, so the ``(latent_dim, C*H*W)`` Jacobian of
each image, which ``torch.func.jacrev`` would build from ``latent_dim`` backward passes, is never
formed.

``recon_loss`` is a per-pixel mean, not the paper's sum over pixels, so ``lam`` here is the
paper's divided by the number of pixels.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .base import check_nonnegative
from .dense import DENSE_QUICK, DENSE_SCHEDULE, DenseAutoencoder, DenseConfig
from .registry import Recipe, register_family, register_model


@dataclasses.dataclass
class ContractiveConfig(DenseConfig):
    hidden: tuple[int, ...] = ()
    latent_dim: int = 100
    latent_activation: str | None = "sigmoid"
    lam: float = 1e-4  # lambda: weight of the batch mean of ||J_f(x)||_F^2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_nonnegative("lam", self.lam)


def mlp_jacobian_norm(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``||dz/dx||_F^2`` ``(B,)`` of ``mlp`` (linear layers and elementwise activations, as
    :func:`~aelab.models.dense.mlp` builds) at each row of ``x`` ``(B, n)``; exact and
    differentiable with respect to the layers' weights."""
    weights: list[torch.Tensor] = []  # W_l (n_l, n_{l-1})
    slopes: list[torch.Tensor] = []  # f_l'(a_l) (B, n_l): ones for a layer with no activation
    h = x
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            h = layer(h)
            weights.append(layer.weight)
            slopes.append(torch.ones_like(h))
        else:  # elementwise, so its slope is the gradient of its sum (works under no_grad too)
            slopes[-1] = torch.func.grad(lambda a, f=layer: f(a).sum())(h)
            h = layer(h)
    w1, d1 = weights[0], slopes[0]
    if len(weights) == 1:  # J = D_1 W_1: sum_j f'(a_j)^2 sum_i W_ji^2
        return d1.square() @ w1.square().sum(1)
    m = slopes[-1][:, :, None] * weights[-1]  # (B, latent_dim, n_{L-1}): D_L W_L
    for w, d in zip(weights[-2:0:-1], slopes[-2:0:-1]):
        m = (m * d[:, None, :]) @ w  # ... D_l W_l
    m = m * d1[:, None, :]  # (B, latent_dim, n_1): J = M W_1
    return ((m @ (w1 @ w1.T)) * m).sum((1, 2))


def sigmoid_layer_norm(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The closed form of ``||dh/dx||_F^2`` ``(B,)`` for ``h = sigmoid(W x + b)`` ``(B, D)``:
    ``sum_j (h_j (1 - h_j))^2 sum_i W_ji^2`` (Rifai et al. 2011, eq. 5), ``weight`` ``(D, n)``."""
    return (h * (1 - h)).square() @ weight.square().sum(1)  # (B, D) @ (D,) -> (B,)


@register_family
class ContractiveAutoencoder(DenseAutoencoder):
    """A :class:`DenseAutoencoder` penalised by ``lam`` times its encoder's squared Jacobian."""

    config_class = ContractiveConfig
    family = "contractive"

    @property
    def closed_form(self) -> bool:
        """Whether the encoder is one sigmoid layer, whose Jacobian norm has a closed form."""
        return not self.config.hidden and self.config.latent_activation == "sigmoid"

    def contraction(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """``||J_f(x)||_F^2`` ``(B,)`` for images ``x``; ``z``: their codes, if already known."""
        if not self.closed_form:
            # encoder: Flatten, mlp; the Jacobian at the input the encoder sees
            return mlp_jacobian_norm(self.encoder[1], self.centred(x).flatten(1))
        z = self.encode(x) if z is None else z
        return sigmoid_layer_norm(z, self.encoder[1][0].weight)  # Flatten, mlp(Linear, Sigmoid)

    def training_code(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = self.encode(x)
        return z, self.config.lam * self.contraction(x, z).mean()


# The notebook's dense schedule (its models 1 and 2): 400 epochs of batch 80, Adam.
register_model(
    Recipe(
        "contractive",
        "contractive",
        "dense, 100 sigmoid code units, penalised by the encoder's squared Jacobian",
        {"hidden": (), "latent_dim": 100, "latent_activation": "sigmoid"},
        DENSE_SCHEDULE,
        quick=DENSE_QUICK,
    )
)
