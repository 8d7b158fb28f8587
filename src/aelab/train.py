"""The generic training loop. Nothing here knows what an autoencoder is: it asks the model for
``model(x_in, target).loss`` and steps an optimizer.

Small data sets live whole on the device and are batched by index (no DataLoader, no workers, no
per-step host synchronisation: the running loss stays a device tensor until the epoch ends).
Every epoch draws its shuffle, noise and sampling from a seed derived from ``(seed, epoch)``, so a
run resumed from a checkpoint continues exactly as if it had never stopped.

Under ``torchrun`` the model trains in ``DistributedDataParallel``: every process draws the same
shuffle, takes its share of each global batch and weights its loss so that the averaged gradient
is the one of the whole batch (:func:`aelab.distributed.shard`). One process computes what N do,
up to the order of floating-point sums, for deterministic models; noise and a VAE's sampling
differ per process (each rank draws from its own seed), so those match only in distribution.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from . import distributed

OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    # Keras' defaults, which the notebook used: lr 1e-3, epsilon 1e-7, RMSprop rho 0.9.
    "adam": (torch.optim.Adam, {"lr": 1e-3, "eps": 1e-7}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3, "eps": 1e-7}),
    "rmsprop": (torch.optim.RMSprop, {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}),
    "sgd": (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}),
}
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclasses.dataclass
class TrainConfig:
    """How to train; saved in ``config.json`` under ``"train"``."""

    epochs: int = 10
    batch_size: int = 64  # the global batch: split among the processes under torchrun
    optimizer: str = "adam"
    learning_rate: float | None = None  # None: the optimizer's Keras default
    shuffle: bool = True
    seed: int = 0
    device: str = "auto"
    noise: str | None = None  # corruption of the inputs, e.g. "gaussian:0.05" (denoising)
    checkpoint_every: int = 0  # epochs between checkpoints; 0: only at the end

    def __post_init__(self) -> None:
        _positive_int("epochs", self.epochs, minimum=0)
        _positive_int("batch_size", self.batch_size)
        _positive_int("checkpoint_every", self.checkpoint_every, minimum=0)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer={self.optimizer!r} is not valid; allowed: {', '.join(OPTIMIZERS)}"
            )
        if self.learning_rate is not None and not (
            isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0
        ):
            raise ValueError(f"learning_rate={self.learning_rate!r} is not valid; expected > 0")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device={self.device!r} is not valid; allowed: {', '.join(DEVICES)}")
        from .data import parse_noise

        parse_noise(self.noise)  # validates

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is not valid; expected an integer >= {minimum}")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; an unavailable choice is an error."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} is not available here; allowed: auto, cpu")
    if device == "mps" and not (torch.backends.mps.is_available()):
        raise ValueError("device='mps' is not available here; allowed: auto, cpu")
    return torch.device(device)


def memory_format(model: nn.Module) -> torch.memory_format:
    """Channels-last for convolutional models, the default layout otherwise.

    The notebook's conv model at 64x64 trains 1.35x faster per epoch in channels-last on a
    2-core x86 CPU (6.3 -> 4.6 s); dense models are unaffected. Training and inference use the
    same layout so that a reloaded model gives bit-identical outputs.
    """
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return torch.channels_last
    return torch.contiguous_format


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    cls, defaults = OPTIMIZERS[config.optimizer]
    kwargs = dict(defaults)
    if config.learning_rate is not None:
        kwargs["lr"] = config.learning_rate
    return cls(model.parameters(), **kwargs)


@contextlib.contextmanager
def flush_denormals():
    """Treat denormal floats as zero while training on a CPU.

    Saturated sigmoids give tiny gradients whose squares (in Adam's and RMSprop's state) fall
    below float32's normal range; arithmetic on such denormals is ~70x slower on x86 CPUs
    (measured: the shallow preset on 8x8 digits, 2.0 s vs 0.03 s per epoch). TensorFlow flushes
    them by default. The setting is restored (to PyTorch's default, off) afterwards.
    """
    changed = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if changed:
            torch.set_flush_denormal(False)


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for one epoch, independent of how the run got there."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1)


class Trainer:
    """Fits a model that returns an object with a ``loss`` from ``model(x_in, target)``.

    Parameters
    ----------
    model : nn.Module
        Called as ``model(x_in, target)``; only ``.loss`` of the result is read.
    config : TrainConfig
    corrupt : callable, optional
        ``corrupt(x) -> x_in``: applied to each training batch (denoising). The held-out loss uses
        one fixed corruption so epochs are comparable.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        corrupt: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.config = config
        self.device = distributed.local_device(resolve_device(config.device))
        self.memory_format = memory_format(model)
        self.model = model.to(self.device, memory_format=self.memory_format)  # never wrapped
        self._ddp: DistributedDataParallel | None = None
        self.corrupt = corrupt
        self.optimizer = make_optimizer(self.model, config)
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, Any]] = []

    def _batches(self, n: int, shuffle: bool) -> list[torch.Tensor]:
        if shuffle:
            order = torch.randperm(n, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        return list(order.split(self.config.batch_size))

    def _training_module(self) -> nn.Module:
        """The model, wrapped in DistributedDataParallel when several processes train it."""
        world = distributed.world()
        if world > 1 and self._ddp is None:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(self.model, device_ids=ids)
        return self._ddp if world > 1 else self.model

    def train_epoch(self, x: torch.Tensor) -> torch.Tensor:
        """One pass over ``x`` (on the device); returns the mean loss as a device scalar.

        With several processes, ``x`` is the whole training set on each, batches are global and
        the returned loss is the mean over all of them.
        """
        module, world, rank = self._training_module(), distributed.world(), distributed.rank()
        module.train()
        total = torch.zeros((), device=self.device)
        batches = self._batches(len(x), self.config.shuffle)  # the same on every process
        if rank:  # rank 0 keeps the epoch's stream, so one process trains as it always has
            torch.manual_seed(epoch_seed(torch.initial_seed(), rank))
        for idx in batches:
            idx, weight, n = distributed.shard(idx, world, rank)
            target = x[idx].contiguous(memory_format=self.memory_format)  # (B, C, H, W)
            x_in = self.corrupt(target) if self.corrupt is not None else target
            out = module(x_in, target)
            self.optimizer.zero_grad(set_to_none=True)
            (out.loss * weight).backward()  # weight 1 in one process
            self.optimizer.step()
            total += out.loss.detach() * n
        return distributed.all_reduce_sum(total) / len(x)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Mean loss on ``x`` in eval mode; corrupted with a fixed seed when denoising."""
        self.model.eval()
        total = torch.zeros((), device=self.device)
        with torch.random.fork_rng(devices=_rng_devices(self.device)):
            torch.manual_seed(self.config.seed)
            for batch in x.split(batch_size):
                x_in = self.corrupt(batch) if self.corrupt is not None else batch
                total += self.model(x_in, batch).loss * len(batch)
        return total / max(len(x), 1)

    def fit(
        self,
        x_train: torch.Tensor,
        x_heldout: torch.Tensor | None = None,
        on_epoch_end: Callable[[Trainer], None] | None = None,
        progress: bool | None = None,
        desc: str | None = None,
    ) -> list[dict[str, Any]]:
        """Train from ``self.epoch`` up to ``config.epochs``; returns the history.

        ``progress=None`` shows a bar only when the output is a terminal (and only on rank 0).
        """
        if not distributed.is_main():
            progress = False
        x_train = x_train.to(self.device, memory_format=self.memory_format)
        if x_heldout is not None and len(x_heldout) == 0:
            x_heldout = None
        if x_heldout is not None:
            x_heldout = x_heldout.to(self.device, memory_format=self.memory_format)
        bar = tqdm(
            total=self.config.epochs,
            initial=self.epoch,
            desc=desc,
            unit="epoch",
            disable=(None if progress is None else not progress),
            leave=True,
            dynamic_ncols=True,
        )
        with torch.random.fork_rng(devices=_rng_devices(self.device)), flush_denormals(), bar:
            while self.epoch < self.config.epochs:
                torch.manual_seed(epoch_seed(self.config.seed, self.epoch))
                start = time.perf_counter()
                loss = self.train_epoch(x_train)
                heldout = self.evaluate(x_heldout) if x_heldout is not None else None
                loss_value = float(loss)  # the epoch's one host synchronisation
                seconds = time.perf_counter() - start
                if not math.isfinite(loss_value):
                    raise FloatingPointError(
                        f"training loss became {loss_value} at epoch {self.epoch + 1}; "
                        "lower the learning rate"
                    )
                self.epoch += 1
                record = {
                    "epoch": self.epoch,
                    "loss": loss_value,
                    "heldout_loss": None if heldout is None else float(heldout),
                    "seconds": seconds,
                }
                self.history.append(record)
                bar.update(1)
                postfix = {"loss": f"{loss_value:.5f}"}
                if heldout is not None:
                    postfix["heldout"] = f"{record['heldout_loss']:.5f}"
                postfix["img/s"] = f"{len(x_train) / seconds:,.0f}"
                bar.set_postfix(postfix, refresh=False)
                if on_epoch_end is not None:
                    on_epoch_end(self)
        return self.history


def _rng_devices(device: torch.device) -> list:
    return [device] if device.type == "cuda" else []
