"""Corruptions of training inputs: what makes an autoencoder a denoising one.

Denoising is a property of training, not of a model: the trainer feeds ``noise(x)`` to the model
and asks it to reconstruct the clean ``x`` (Vincent et al. 2008, "Extracting and Composing Robust
Features with Denoising Autoencoders"). ``TrainConfig.noise`` names one of these as text, e.g.
``"gaussian:0.05"`` (the notebook's denoising model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import torch

from aelab.utils.choices import did_you_mean

NOISE_KINDS = ("gaussian", "saltpepper", "mask")


def _noise_error(spec: object) -> ValueError:
    kind = spec.strip().lower().partition(":")[0] if isinstance(spec, str) else None
    hint = "" if kind in NOISE_KINDS else did_you_mean(kind, NOISE_KINDS)
    return ValueError(
        f"noise={spec!r} is not valid; {hint}use gaussian:STD (STD > 0), saltpepper:P or mask:P "
        "(0 < P < 1)"
    )


@dataclass(frozen=True)
class Noise:
    """A corruption of input batches for denoising, applied on the batch's device.

    ``gaussian:STD`` adds ``STD * randn`` (not clipped, as the notebook does);
    ``saltpepper:P`` sets a fraction P of pixel locations to 0 or to 1 (half each, all channels);
    ``mask:P`` sets a fraction P of pixel locations to 0 in all channels (inpainting).
    """

    kind: str
    level: float

    def __post_init__(self) -> None:
        level = self.level
        valid = isinstance(level, Real) and not isinstance(level, bool)
        valid = valid and math.isfinite(level) and level > 0
        valid = valid and self.kind in NOISE_KINDS and (self.kind == "gaussian" or level < 1)
        if not valid:
            raise _noise_error(f"{self.kind}:{level}")
        object.__setattr__(self, "level", float(level))

    def __str__(self) -> str:
        return f"{self.kind}:{self.level!r}"

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A corrupted copy of the batch ``x`` ``(N, C, H, W)``; ``x`` itself is not changed.

        Parameters
        ----------
        x : torch.Tensor
        generator : torch.Generator, optional
            On ``x``'s device, for reproducible noise; default torch's global generator.

        Returns
        -------
        torch.Tensor
        """
        if self.kind == "gaussian":
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            return x + self.level * noise
        where = (x.shape[0], 1, *x.shape[2:]) if x.ndim >= 3 else x.shape  # pixel locations
        u = torch.rand(where, generator=generator, device=x.device)
        if self.kind == "mask":
            return x.masked_fill(u < self.level, 0.0)
        pepper = u < self.level / 2
        salt = (u >= self.level / 2) & (u < self.level)
        return x.masked_fill(pepper, 0.0).masked_fill(salt, 1.0)


def parse_noise(spec: str | Noise | None) -> Noise | None:
    """``"gaussian:0.05"``, ``"saltpepper:0.1"`` or ``"mask:0.25"`` as a :class:`Noise`.

    Parameters
    ----------
    spec : str, Noise or None
        None, ``""`` and ``"none"`` mean no noise.

    Returns
    -------
    Noise or None
    """
    if spec is None or isinstance(spec, Noise):
        return spec
    if not isinstance(spec, str):
        raise _noise_error(spec)
    if spec.strip().lower() in ("", "none"):
        return None
    kind, _, level = spec.strip().lower().partition(":")
    try:
        return Noise(kind, float(level))
    except ValueError:
        raise _noise_error(spec) from None
