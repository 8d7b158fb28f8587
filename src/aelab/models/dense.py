"""Dense (fully connected) autoencoders: the notebook's models 1 and 2.

The image is flattened, passed through ``hidden`` layers to a ``latent_dim`` code and back through
the same sizes in reverse. ``hidden=()`` is the single-hidden-layer autoencoder.
"""

from __future__ import annotations

import dataclasses
import itertools

from torch import nn

from .base import (
    BaseAutoencoder,
    ModelConfig,
    _check_activation,
    _check_flag,
    activation,
    flat_size,
)
from .layers import FullPrecisionLinear
from .registry import QuickBudget, Recipe, register_family, register_model


@dataclasses.dataclass
class DenseConfig(ModelConfig):
    hidden: tuple[int, ...] = (256,)  # encoder layer sizes; the decoder mirrors them
    activation: str = "relu"  # between hidden layers
    latent_activation: str | None = "relu"  # on the code; None leaves it linear
    centre_input: bool = False  # the encoder sees x minus the training mean (models.base.Centred)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_flag("centre_input", self.centre_input)
        self.hidden = _check_sizes("hidden", self.hidden)
        _check_activation("activation", self.activation)
        _check_activation("latent_activation", self.latent_activation, allow_none=True)


def _check_sizes(name: str, sizes) -> tuple[int, ...]:
    sizes = tuple(sizes)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes):
        raise ValueError(f"{name}={sizes!r} is not valid; expected positive integers")
    return sizes


def mlp(
    sizes: tuple[int, ...],
    act: str,
    last_act: str | None,
    *,
    full_first: bool = False,
    full_last: bool = False,
) -> nn.Sequential:
    """Linear layers ``sizes[0] -> sizes[1] -> ...`` with ``act`` between and ``last_act`` after;
    ``full_first`` / ``full_last``: that layer keeps full precision under autocast (a code layer,
    :mod:`aelab.models.layers`)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        last = i == len(sizes) - 2
        full = (i == 0 and full_first) or (last and full_last)
        layers.append((FullPrecisionLinear if full else nn.Linear)(n_in, n_out))
        if not last or last_act is not None:
            layers.append(activation(last_act if last else act))
    return nn.Sequential(*layers)


@register_family
class DenseAutoencoder(BaseAutoencoder):
    """Flatten -> ``hidden`` -> code -> reversed ``hidden`` -> image.

    Notebook recipes: ``shallow`` (``hidden=()``, 100 sigmoid units) and ``deep``
    (``hidden=(256,)``, 20 relu units), both with a sigmoid output.
    """

    config_class = DenseConfig
    family = "dense"
    draws_weights = True

    def __init__(self, config: DenseConfig) -> None:
        super().__init__(config)
        c = config
        n = flat_size(c.input_shape)
        # the code layers keep full precision under autocast where a hidden layer, not the image,
        # is on their other side: bfloat16 costs them little time and much loss (models.layers)
        deep = bool(c.hidden)
        self.encoder = nn.Sequential(
            nn.Flatten(),  # (B, C, H, W) -> (B, C*H*W)
            mlp((n, *c.hidden, c.latent_dim), c.activation, c.latent_activation, full_last=deep),
        )
        self.decoder = nn.Sequential(
            mlp(
                (c.latent_dim, *reversed(c.hidden), n),
                c.activation,
                c.output_activation,
                full_first=deep,
            ),
            nn.Unflatten(1, c.input_shape),  # (B, C*H*W) -> (B, C, H, W)
        )
        self.reset_parameters()

    def weight_images(self) -> tuple:
        """First encoder and last decoder weight matrices as images, ``(units, C, H, W)`` each.

        Row ``k`` of the encoder's first layer is what unit ``k`` looks for in the input; column
        ``k`` of the decoder's last layer is what unit ``k`` paints in the output.
        """
        linears_enc = [m for m in self.encoder.modules() if isinstance(m, nn.Linear)]
        linears_dec = [m for m in self.decoder.modules() if isinstance(m, nn.Linear)]
        w_in = linears_enc[0].weight.detach()  # (units, C*H*W)
        w_out = linears_dec[-1].weight.detach().T  # (units, C*H*W)
        shape = self.config.input_shape
        return w_in.reshape(-1, *shape).cpu().numpy(), w_out.reshape(-1, *shape).cpu().numpy()


# The notebook's dense schedule: 400 epochs of batch 80, Adam; the quick schedule sees 300,000
# 28x28 images (20-300 epochs).
DENSE_SCHEDULE = {"epochs": 400, "batch_size": 80, "optimizer": "adam"}
DENSE_QUICK = QuickBudget(images=300_000, min_epochs=20, max_epochs=300)
# deep's ReLU code, quick: with a centred input (models.base.Centred), over 3 seeds on Olivetti
# 0 of 20 code units dead instead of 14.3 +- 3.2, held-out MSE 0.0080 instead of 0.0132
# (benchmarks/dead_units.py). The notebook's own schedule keeps the notebook's model.
DEEP_QUICK = dataclasses.replace(DENSE_QUICK, model={"centre_input": True})
register_model(
    Recipe(
        "shallow",
        "dense",
        "dense, one hidden code layer (notebook model 1: 100 sigmoid units)",
        {"hidden": (), "latent_dim": 100, "latent_activation": "sigmoid"},
        DENSE_SCHEDULE,
        quick=DENSE_QUICK,
        autocast_bf16=True,  # seed schedule, seeds 0-2: held-out MSE 0.963x fp32's, within spread
    )
)
register_model(
    Recipe(
        "deep",
        "dense",
        "dense stack 256-20-256 relu (notebook model 2)",
        {"hidden": (256,), "latent_dim": 20, "latent_activation": "relu"},
        DENSE_SCHEDULE,
        quick=DEEP_QUICK,
        report_embeddings=True,
        autocast_bf16=True,  # seed schedule, seeds 0-2: held-out MSE 0.991x fp32's, within spread
    )
)
