"""On-the-fly augmentation of training batches: random affine warps and brightness/contrast
jitter, drawn per image and applied in one batched ``grid_sample`` on the device.

The trainer augments the training target (and so the input made from it) before corruption;
held-out and validation images are never touched. The spec is a string, saved in ``config.json``
with the rest of the schedule::

    "affine"                                   the defaults below
    "affine:shift=0.05,rotate=5,scale=0.05"    each bound given (missing ones stay default)
    "affine:shift=0.05,brightness=0,contrast=0"

``shift`` is a fraction of the image's half-size, ``rotate`` in degrees, ``scale`` a relative
change; ``brightness`` is added and ``contrast`` multiplies around the image's mean, each drawn
uniformly in ``[-bound, bound]``. Mirrors are not drawn here: ``--mirror`` adds true mirrors to
the training set (:func:`aelab.data.mirror`).

Kornia's ``RandomAffine`` does the same batched on tensors; it would be one more dependency for
two dozen lines, so aelab keeps its own (torchvision's transforms do not import beside the CPU
wheel of torch that aelab installs).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from aelab.utils.choices import did_you_mean

KINDS = ("affine",)


@dataclasses.dataclass(frozen=True)
class Affine:
    """Bounds of the random warp and photometric jitter (see the module's docstring)."""

    shift: float = 0.075
    rotate: float = 8.6
    scale: float = 0.075
    brightness: float = 0.075
    contrast: float = 0.15

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, C, H, W)`` in [0, 1], each image warped and jittered on its own draw."""
        b = len(x)

        def draw(bound: float) -> torch.Tensor:
            return (torch.rand(b, device=x.device, dtype=torch.float32) * 2 - 1) * bound

        shift_x, shift_y = draw(self.shift), draw(self.shift)
        angle, scale = draw(math.radians(self.rotate)), torch.exp(draw(self.scale))
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
        ).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
        if self.contrast or self.brightness:
            mean = out.mean(dim=(1, 2, 3), keepdim=True)
            gain = (1 + draw(self.contrast)).view(b, 1, 1, 1).to(x.dtype)
            offset = draw(self.brightness).view(b, 1, 1, 1).to(x.dtype)
            out = ((out - mean) * gain + mean + offset).clamp(0, 1)
        return out


def parse_augment(spec: str | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The augmentation ``spec`` names (see the module's docstring); None for none."""
    if spec is None or spec in ("", "none"):
        return None
    allowed = "none, affine or affine:shift=S,rotate=DEG,scale=S,brightness=B,contrast=C"
    if not isinstance(spec, str):
        raise ValueError(f"augment={spec!r} is not valid; allowed: {allowed}")
    kind, _, rest = spec.partition(":")
    if kind not in KINDS:
        raise ValueError(
            f"augment={spec!r} is not valid; {did_you_mean(kind, KINDS)}allowed: {allowed}"
        )
    names = {f.name for f in dataclasses.fields(Affine)}
    values: dict[str, float] = {}
    for item in filter(None, rest.split(",")):
        name, eq, text = item.partition("=")
        try:
            value = float(text) if eq and name in names else math.nan
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0) or name in values:
            raise ValueError(
                f"augment={spec!r} is not valid at {item!r}; allowed: {allowed}, each bound a "
                "number >= 0 given once"
            )
        values[name] = value
    return Affine(**values)


__all__ = ["KINDS", "Affine", "parse_augment"]
