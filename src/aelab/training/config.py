"""How to train: :class:`TrainConfig`, saved in a run's ``config.json`` under ``"train"``.

Each field is declared once, with the help text from which the command line makes its flag
(:func:`aelab.utils.fields.setting`), and checked here, whatever sets it: a flag, a config file,
the estimator or a resumed run's record.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from aelab.utils.choices import not_one_of
from aelab.utils.fields import from_fields, setting

# how long each recipe trains (aelab.training.recipes): declared here, with the settings, so that
# the command line lists them without importing the models (and torch)
SCHEDULES = ("seed", "quick")


@dataclasses.dataclass
class TrainConfig:
    """How to train; saved in ``config.json`` under ``"train"``."""

    epochs: int = setting(10, "passes over the training images (default: the schedule's)",
                          metavar="N")  # fmt: skip
    batch_size: int = setting(  # the global batch: split among the processes under torchrun
        64, "images per step (default: the schedule's)", metavar="N"
    )
    optimizer: str = setting(
        "adam", "adam, adamw, rmsprop or sgd (default: the model's)", metavar="NAME"
    )
    learning_rate: float | None = setting(  # None: the optimizer's Keras default
        None, "learning rate (default: the optimizer's Keras default)", flag="--lr",
        metavar="LR",
    )  # fmt: skip
    shuffle: bool = setting(True, "keep the sample order", flag="--no-shuffle")
    seed: int = setting(0, "fixes every random choice (default 0)", metavar="S")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps (default auto)")
    noise: str | None = setting(  # corruption of the inputs (denoising)
        None, "train on corrupted inputs: gaussian:0.05, saltpepper:0.1, mask:0.25; none",
        metavar="KIND:LEVEL",
    )  # fmt: skip
    checkpoint_every: int = setting(
        0, "also checkpoint every N epochs (always at the end)", metavar="N"
    )
    checkpoint_seconds: float = setting(  # aelab run: 30 (aelab.apps.workshop)
        0.0, "also checkpoint after an epoch once S seconds have passed since the last "
        "checkpoint (default 0: never; aelab run: 30)", metavar="S",
    )  # fmt: skip
    workers: int = setting(  # DataLoader processes reading a streamed Dataset
        0, "with --stream: N processes read and decode images (default 0: in the training "
        "process)", metavar="N",
    )  # fmt: skip
    precision: str = setting(  # auto is decided by aelab.training.recipes.resolve
        "auto", "fp32, bf16 (bfloat16 autocast, float32 weights) or auto (default: bf16 where "
        "the device computes in bfloat16 natively and the recipe was shown to keep its held-out "
        "error in bf16, fp32 elsewhere; see benchmarks/README.md)",
    )  # fmt: skip
    conv_kernels: str = setting(
        "auto", "auto (default): on a CPU, time each convolution's passes in oneDNN and "
        "PyTorch's own kernels and run each in the faster; default: PyTorch's choice, "
        "bit-reproducible runs",
    )  # fmt: skip
    augment: str | None = setting(  # random warps of training images (aelab.training.augment)
        None, "random warps of training images: affine, or affine:shift=S,rotate=DEG,scale=S,"
        "brightness=B,contrast=C; none (default: the model's)", metavar="SPEC",
    )  # fmt: skip
    validation: float = setting(  # share of training people (or images) that chooses the epoch
        0.0, "carve this share of the training people (or images) out to choose the epoch",
        metavar="FRACTION",
    )  # fmt: skip
    patience: int = setting(  # 0: train every epoch
        0, "stop after N epochs without a better validation loss, keeping the best epoch",
        metavar="N",
    )  # fmt: skip

    def __post_init__(self) -> None:
        # the checks that need torch are imported here: the command line builds its flags from
        # this class's fields, and `aelab --help` must answer without importing torch
        from aelab.training import kernels
        from aelab.training.augment import parse_augment
        from aelab.training.noise import parse_noise
        from aelab.training.optim import check_optimizer
        from aelab.utils.device import PRECISION_ALIASES, PRECISIONS, check_device

        _positive_int("epochs", self.epochs)  # 0 would write an untrained run
        _positive_int("batch_size", self.batch_size)
        _positive_int("checkpoint_every", self.checkpoint_every, minimum=0)
        seconds = self.checkpoint_seconds
        if isinstance(seconds, bool) or not (
            isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0
        ):
            raise ValueError(
                f"checkpoint_seconds={seconds!r} is not valid; expected a number of seconds >= 0"
            )
        _positive_int("workers", self.workers, minimum=0)
        check_optimizer(self.optimizer)
        lr = self.learning_rate
        if lr is not None and not (
            isinstance(lr, (int, float))
            and not isinstance(lr, bool)
            and math.isfinite(lr)
            and lr > 0
        ):
            raise ValueError(f"learning_rate={lr!r} is not valid; expected a finite number > 0")
        if self.precision not in PRECISIONS:
            raise not_one_of("precision", self.precision, PRECISIONS, aliases=PRECISION_ALIASES)
        if self.conv_kernels not in kernels.CONV_KERNELS:
            raise not_one_of("conv_kernels", self.conv_kernels, kernels.CONV_KERNELS)
        check_device(self.device)
        parse_noise(self.noise)  # validates
        parse_augment(self.augment)
        v = self.validation
        if isinstance(v, bool) or not (isinstance(v, (int, float)) and 0 <= v < 1):
            raise ValueError(f"validation={v!r} is not valid; expected a fraction in [0, 1)")
        _positive_int("patience", self.patience, minimum=0)
        if self.patience and not self.validation:
            raise ValueError(
                f"patience={self.patience} needs validation images to watch; set validation to "
                "a fraction in (0, 1) of the training people or images"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The inverse of :meth:`to_dict`; unknown fields are an error naming them."""
        return from_fields(cls, d)


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is not valid; expected an integer >= {minimum}")
