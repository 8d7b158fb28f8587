"""Vector-quantised autoencoders (van den Oord et al. 2017, "Neural Discrete Representation
Learning").

The conv encoder of :class:`~aelab.models.conv.ConvAutoencoder` ends in a linear head of
``latent_dim`` values, read as ``latent_dim // code_dim`` slots of ``code_dim`` values; each slot
is replaced by its nearest vector in a codebook of ``codebook_size`` (the paper quantises a
spatial grid; slots of a vector keep ``latent_dim`` what the caller asked for, as the base
contract wants). Gradients pass the quantisation straight through; the loss is the per-pixel MSE
plus ``beta`` times the commitment loss. The codebook is not trained by gradient: it is an
exponential moving average of the encoder outputs assigned to each code (the paper's appendix;
Razavi et al. 2019, "Generating Diverse High-Fidelity Images with VQ-VAE-2"), and a code left
unused for ``restart_after`` training steps restarts at a random encoder output of the batch.
Every code starts that way: the first training batch initialises the codebook.

``encode`` returns the quantised slots flattened, ``(B, latent_dim)`` floats that ``decode``
takes back; ``code_indices`` gives the codebook indices. ``discrete_codes`` is set, so nothing
offers random or PCA codes; :meth:`VQVAE.sample_codes` draws each slot's code independently
(from its frequencies on images ``x``, or uniformly), which no entry point calls yet.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aelab.utils import distributed

from .base import BaseAutoencoder, check_nonnegative
from .conv import CONV_QUICK, ConvConfig, conv_decoder, conv_encoder_body
from .layers import FullPrecisionLinear, no_autocast
from .registry import Recipe, register_family, register_model

LAPLACE_EPS = 1e-5  # smoothing of the EMA counts: a code nobody uses never divides by zero


@dataclasses.dataclass
class VQVAEConfig(ConvConfig):
    latent_dim: int = 64  # slots x code_dim: the length of encode()'s output
    latent_activation: str | None = None  # unused: the head before quantisation is linear
    code_dim: int = 4  # values per slot (the paper's D)
    codebook_size: int = 256  # codes every slot chooses from (the paper's K)
    beta: float = 0.25  # weight of the commitment loss (the paper's)
    decay: float = 0.99  # of the codebook's moving averages (the paper's appendix)
    restart_after: int = 100  # training steps a code may go unused before it restarts

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, minimum in (("code_dim", 1), ("codebook_size", 2), ("restart_after", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise ValueError(f"{name}={v!r} is not valid; expected an integer >= {minimum}")
        if self.latent_dim % self.code_dim:
            raise ValueError(
                f"latent_dim={self.latent_dim} is not valid for code_dim={self.code_dim}; "
                "expected a multiple of code_dim (the code is latent_dim // code_dim slots)"
            )
        check_nonnegative("beta", self.beta)
        d = self.decay
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d < 1:
            raise ValueError(f"decay={self.decay!r} is not valid; expected 0 <= decay < 1")


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation of vectors ``(N, D)`` against a codebook ``(K, D)``.

    The codebook and its moving averages are buffers (saved with the weights, never given to an
    optimizer); ``idle`` counts the training steps since each code was last chosen.
    """

    def __init__(self, codebook_size: int, code_dim: int, decay: float, restart_after: int):
        super().__init__()
        self.decay, self.restart_after = decay, restart_after
        self.register_buffer("codebook", torch.randn(codebook_size, code_dim))  # (K, D)
        self.register_buffer("ema_count", torch.zeros(codebook_size))  # (K,) codes chosen
        self.register_buffer("ema_sum", torch.zeros(codebook_size, code_dim))  # (K, D) of inputs
        # every code starts idle for restart_after steps: the first batch initialises the unused
        self.register_buffer("idle", torch.full((codebook_size,), restart_after))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Index ``(N,)`` of the code nearest (in Euclidean distance) to each row of ``z``."""
        e = self.codebook
        d = z.square().sum(1, keepdim=True) - 2 * z @ e.T + e.square().sum(1)  # (N, K)
        return d.argmin(1)

    def forward(self, z_e: torch.Tensor, update: bool = False):
        """Quantised ``z_e`` ``(N, D)`` with straight-through gradients, the indices ``(N,)`` and
        the commitment loss; ``update`` moves the codebook towards this batch afterwards."""
        with no_autocast(z_e.device.type):  # bf16 distances pick the wrong codes, sums drift
            z = z_e.to(self.codebook.dtype)  # float32 under autocast; float64 in a .double() copy
            idx = self.nearest(z.detach())
            z_q = self.codebook[idx]  # (N, D), the codes before this batch moves them
            commitment = F.mse_loss(z, z_q)
            if update:
                self._update(z.detach(), idx)
            return z + (z_q - z).detach(), idx, commitment

    @torch.no_grad()
    def _update(self, z: torch.Tensor, idx: torch.Tensor) -> None:
        onehot = F.one_hot(idx, len(self.codebook)).type_as(z)  # (N, K)
        counts = distributed.all_reduce_sum(onehot.sum(0))  # (K,), over every process's shard
        sums = distributed.all_reduce_sum(onehot.T @ z)  # (K, D)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n, k = self.ema_count.sum(), len(self.codebook)
        count = (self.ema_count + LAPLACE_EPS) / (n + k * LAPLACE_EPS) * n
        self.codebook.copy_(self.ema_sum / count[:, None])
        self.idle.add_(1).masked_fill_(counts > 0, 0)
        # restart dead codes at random inputs; torch.where, not indexing: no host sync per step
        dead = self.idle >= self.restart_after  # (K,)
        fresh = z[torch.randint(len(z), (k,), device=z.device)]  # (K, D)
        self.codebook.copy_(torch.where(dead[:, None], fresh, self.codebook))
        self.ema_sum.copy_(torch.where(dead[:, None], fresh, self.ema_sum))
        self.ema_count.masked_fill_(dead, 1.0)
        self.idle.masked_fill_(dead, 0)


@register_family
class VQVAE(BaseAutoencoder):
    """Conv encoder, a codebook quantising ``latent_dim // code_dim`` slots, conv decoder."""

    config_class = VQVAEConfig
    family = "vqvae"
    input_layout = "image"
    discrete_codes = True
    has_prior = True

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__(config)
        c = config
        body, width = conv_encoder_body(c)
        self.encoder = nn.Sequential(*body, FullPrecisionLinear(width, c.latent_dim))
        self.quantizer = VectorQuantizer(c.codebook_size, c.code_dim, c.decay, c.restart_after)
        self.decoder = conv_decoder(c)
        self.reset_parameters()

    def _quantize(self, x: torch.Tensor, update: bool = False):
        z_e = self.encoder(self.centred(x))  # (B, latent_dim)
        z_q, idx, commitment = self.quantizer(z_e.reshape(-1, self.config.code_dim), update)
        return z_q.reshape(len(x), -1), idx.reshape(len(x), -1), commitment  # (B, slots) idx

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The quantised slots flattened, ``(B, latent_dim)``; never moves the codebook."""
        return self._quantize(x)[0]

    def code_indices(self, x: torch.Tensor) -> torch.Tensor:
        """The codebook index of each slot, ``(B, latent_dim // code_dim)``."""
        return self._quantize(x)[1]

    def training_code(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        z, _, commitment = self._quantize(x, update=self.training)
        return z, self.config.beta * commitment

    def export_encode(self, x: torch.Tensor, logvar: bool = False) -> tuple[torch.Tensor, ...]:
        if logvar:
            return super().export_encode(x, logvar)
        # encode() reshapes by len(x), which torch.jit.trace would freeze
        z_e = self.encoder(self.centred(x)).reshape(-1, self.config.code_dim)  # (B*slots, d)
        return (self.quantizer(z_e)[0].reshape(-1, self.latent_dim),)  # (B, latent_dim)

    @torch.no_grad()
    def sample_prior(self, n: int, random_state: np.random.Generator) -> np.ndarray:
        """``n`` codes ``(n, latent_dim)``: each slot's code drawn uniformly from the codebook,
        on its own (the prior the VQ-VAE trains under; no learned prior)."""
        slots, k = self.latent_dim // self.config.code_dim, self.config.codebook_size
        idx = np.minimum((random_state.random((n, slots)) * k).astype(np.int64), k - 1)
        codebook = self.quantizer.codebook.detach().cpu().double().numpy()  # (K, D)
        return codebook[idx].reshape(n, -1)

    @torch.no_grad()
    def extra_metrics(self, x: torch.Tensor) -> dict[str, float]:
        """``codebook_usage``: the fraction of codes chosen on ``x``; ``perplexity``: exp of the
        entropy of the codes' frequencies (``codebook_size`` when all are equally used)."""
        counts = torch.bincount(self.code_indices(x).flatten(), minlength=self.config.codebook_size)
        p = counts.double() / counts.sum()
        entropy = -(p * p.clamp_min(1e-300).log()).sum()  # 0 log 0 = 0
        return {
            "codebook_usage": float((counts > 0).double().mean()),
            "perplexity": float(entropy.exp()),
        }


register_model(
    Recipe(
        "vqvae",
        "vqvae",
        "vector-quantised: the conv encoder's 64 values as 16 slots, each one of 256 codes",
        {"channels": (32, 64, 128), "latent_dim": 64, "code_dim": 4, "codebook_size": 256},
        {"epochs": 100, "batch_size": 80, "optimizer": "adam"},
        quick=CONV_QUICK,
    )
)

__all__ = ["VQVAE", "VQVAEConfig", "VectorQuantizer"]
