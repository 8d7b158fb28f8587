"""The generic training loop. Nothing here knows what an autoencoder is: it asks the model for
``model(x_in, target).loss`` and steps an optimizer.

Small data sets live whole on the device and are batched by index (no DataLoader, no workers, no
per-step host synchronisation: the running loss stays a device tensor until the epoch ends).
Data sets larger than memory come as a ``torch.utils.data.Dataset`` and stream through a
``DataLoader`` (worker processes, pinned memory, a ``DistributedSampler`` under
``torch.distributed``). Both feed the same epoch loop, with the same loss, corruption and single
synchronisation per epoch. Every epoch draws its shuffle, noise and sampling from a seed derived
from ``(seed, epoch)``, so a run resumed from :meth:`Trainer.state_dict` continues exactly as if
it had never stopped.

Under ``torchrun`` the model trains in ``DistributedDataParallel``: every process draws the same
shuffle, takes its share of each global batch and weights its loss so that the averaged gradient
is the one of the whole batch (:func:`aelab.distributed.shard`). One process computes what N do,
up to the order of floating-point sums, for deterministic models; noise and a VAE's sampling
differ per process (each rank draws from its own seed), so those match only in distribution.

Checkpoints, early stopping, the NaN guard and the progress bar are callbacks
(:mod:`aelab.callbacks`), not branches of the loop.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from aelab.training import kernels
from aelab.training.augment import parse_augment
from aelab.training.batches import InMemory, Streamed, make_loader
from aelab.training.callbacks import Callback, EarlyStopping, FiniteLoss, ProgressBar
from aelab.training.config import TrainConfig
from aelab.training.noise import parse_noise
from aelab.training.optim import check_state, make_optimizer, match_parameter_layout
from aelab.utils import distributed
from aelab.utils.device import (
    autocast,
    fast_cpu,
    memory_format,
    resolve_device,
    resolve_precision,
    rng_devices,
)
from aelab.utils.threads import Threads

# Tuning the notebook's conv model's kernels on a 2-core AVX-512 CPU takes 2.2 s in bfloat16 and
# 5.6 s in float32 and then saves 1.0 and 1.5 s per 9-step epoch (PyTorch's own bfloat16
# transposed convolutions are the slow part), so it pays for itself after 20-35 steps
# (benchmarks/README.md): shorter runs are not tuned.
TUNE_MIN_STEPS = 40
EVAL_BATCH_SIZE = 512  # held-out batches, in memory or streamed
DATA_INIT_IMAGES = 20_000  # at most this many training images initialise a needs_data_init model
PROBE_IMAGES = 32  # training images whose eval-mode loss FiniteLoss checks every epoch


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for one epoch, independent of how the run got there."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1)


class Trainer:
    """Fits a model that returns an object with a ``loss`` from ``model(x_in, target)``.

    Parameters
    ----------
    model : nn.Module
        Called as ``model(x_in, target)``; only ``.loss`` of the result is read.
        ``model.set_epoch(epoch)``, where it exists, is called before each epoch.
    config : TrainConfig
        Everything about the schedule, including the corruption of the inputs (``noise``).
    callbacks : sequence of Callback, optional
        Run after the trainer's own :class:`~aelab.callbacks.FiniteLoss`, in this order, at
        every :meth:`fit`.
    corrupt : callable, optional
        ``corrupt(x) -> x_in`` in place of the corruption ``config.noise`` names: applied to each
        training batch. The held-out loss uses one fixed corruption so epochs are comparable.

    Attributes
    ----------
    epoch : int
        Epochs completed.
    history : list of dict
        One record per epoch: ``{"epoch", "loss", "heldout_loss", "validation_loss", "seconds",
        "threads"}``; ``threads`` is the CPU thread count the epoch trained with, which follows
        the cores free on a CPU (:mod:`aelab.utils.threads`).
    conv_kernels : dict or None
        The convolution kernels chosen (module name -> :class:`~aelab.kernels.ConvKernels`);
        None until the first :meth:`fit` chooses them.
    stop_training : bool
        Set by a callback to end :meth:`fit` after the current epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        *,
        callbacks: Sequence[Callback] = (),
        corrupt: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.config = config
        self.device = distributed.local_device(resolve_device(config.device))
        self.memory_format = memory_format(model)
        self.model = model.to(self.device, memory_format=self.memory_format)  # never wrapped
        self._ddp: DistributedDataParallel | None = None
        self.corrupt = corrupt if corrupt is not None else parse_noise(config.noise)
        self.augment = parse_augment(config.augment)
        self.optimizer = make_optimizer(self.model, config.optimizer, config.learning_rate)
        self.precision = resolve_precision(config.precision, self.device)
        self.callbacks: list[Callback] = [FiniteLoss(), *callbacks]
        if config.patience:  # before the caller's callbacks: a checkpoint keeps the best epoch
            self.callbacks.insert(1, EarlyStopping("validation_loss", config.patience))
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.conv_kernels: dict[str, kernels.ConvKernels] | None = None
        self.tuning_seconds = 0.0  # time spent choosing them
        self.stop_training = False
        self.n_train = 0  # images per epoch in the current fit
        self.probe: torch.Tensor | None = None  # the first training images, on the device

    # -- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: ``epoch``, ``history``, ``model`` and ``optimizer``
        state, the ``conv_kernels`` chosen and the ``precision`` trained in. Tensors are the live
        ones (save, don't keep)."""
        kernels_ = self.conv_kernels
        return {
            "epoch": self.epoch,
            "history": [dict(r) for r in self.history],
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "conv_kernels": None if kernels_ is None else {k: list(v) for k, v in kernels_.items()},
            "precision": self.precision,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (or what :func:`aelab.checkpoint.load_state` read)."""
        from aelab.utils.files import fit_weights

        fit_weights(self.model, state["model"], "the checkpoint")
        check_state(self.optimizer, state["optimizer"], "the checkpoint")
        self.optimizer.load_state_dict(state["optimizer"])
        match_parameter_layout(self.optimizer)
        self.epoch = int(state["epoch"])
        self.history = [dict(r) for r in state["history"]][: self.epoch]
        chosen = state.get("conv_kernels")
        self.conv_kernels = (
            None if chosen is None else {k: kernels.ConvKernels(*v) for k, v in chosen.items()}
        )

    # -- one step, one epoch --------------------------------------------------------------

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast when the precision is ``bf16``; otherwise nothing changes."""
        return autocast(self.precision, self.device)

    def _training_module(self) -> nn.Module:
        """The model, wrapped in DistributedDataParallel when several processes train it."""
        world = distributed.world()
        if world > 1 and self._ddp is None:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(self.model, device_ids=ids)
        return self._ddp if world > 1 else self.model

    def _step(self, module: nn.Module, target: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
        """One optimizer step on the batch ``target``; returns its mean loss (detached).

        ``weight`` scales the loss this process contributes (see :func:`distributed.shard`).
        """
        if self.augment is not None:
            target = self.augment(target)
        x_in = self.corrupt(target) if self.corrupt is not None else target
        with self.autocast():
            loss = module(x_in, target).loss
        self.optimizer.zero_grad(set_to_none=True)
        (loss if weight == 1 else loss * weight).backward()  # 1 in one process
        self.optimizer.step()
        return loss.detach()

    def _train_epoch(self, source: InMemory | Streamed) -> torch.Tensor:
        """One pass over the training data; the mean loss over every process, on the device."""
        module = self._training_module()
        module.train()
        batches = source.epoch(self.epoch)  # the order is drawn here, the same on every process
        if distributed.rank():  # rank 0 keeps the epoch's stream: one process trains as always
            torch.manual_seed(epoch_seed(torch.initial_seed(), distributed.rank()))
        total = torch.zeros((), device=self.device)
        count = 0
        for target, weight, n in batches:
            total.add_(self._step(module, target, weight), alpha=n)
            count += n
        if distributed.world() > 1:  # the mean over every process's shard
            sums = torch.stack([total, torch.tensor(float(count), device=self.device)])
            distributed.all_reduce_sum(sums)
            return sums[0] / sums[1]
        return total / max(count, 1)

    def evaluate(self, x: torch.Tensor, batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
        """Mean loss on ``x`` (on the device) in eval mode; corrupted with a fixed seed when
        denoising."""
        return self._mean_loss(x.split(batch_size), len(x))

    @torch.no_grad()
    def _mean_loss(self, batches: Iterable[torch.Tensor], n: int) -> torch.Tensor:
        """Mean loss over ``batches`` (``n`` images in all, on the device), in eval mode."""
        self.model.eval()
        total = torch.zeros((), device=self.device)
        with torch.random.fork_rng(devices=rng_devices(self.device)):
            torch.manual_seed(self.config.seed)
            for batch in batches:
                x_in = self.corrupt(batch) if self.corrupt is not None else batch
                total += self.model(x_in, batch).loss * len(batch)
        return total / max(n, 1)

    def _sources(self, x_train, x_heldout, x_validation=None):
        """The training source and functions giving the held-out and validation losses (or
        None)."""
        parts = (("x_train", x_train), ("x_heldout", x_heldout), ("x_validation", x_validation))
        for name, x in parts:
            allowed = (
                torch.is_tensor(x) or isinstance(x, Dataset) or (x is None and name != "x_train")
            )
            if not allowed:
                raise TypeError(
                    f"{name} is a {type(x).__name__}; expected a tensor (N, C, H, W) or a "
                    "torch.utils.data.Dataset of (C, H, W) tensors"
                )
        train = InMemory(self, x_train) if torch.is_tensor(x_train) else Streamed(self, x_train)
        return train, self._loss_of(x_heldout), self._loss_of(x_validation)

    def _loss_of(self, x) -> Callable[[], torch.Tensor] | None:
        """A function giving the mean loss on ``x`` (a tensor or Dataset), or None for none."""
        if x is None or len(x) == 0:
            return None
        if torch.is_tensor(x):
            x = x.to(self.device, memory_format=self.memory_format)
            return lambda: self.evaluate(x)
        loader = make_loader(self, x, EVAL_BATCH_SIZE, sampler=None)

        def loss() -> torch.Tensor:
            fmt = self.memory_format
            batches = (b.to(self.device, non_blocking=True, memory_format=fmt) for b in loader)
            return self._mean_loss(batches, len(x))

        return loss

    def probe_loss(self) -> float | None:
        """The loss on the first training images in eval mode, as a saved run computes it (the
        run's random draws untouched); None before :meth:`fit`."""
        if self.probe is None or not len(self.probe):
            return None
        self.model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=rng_devices(self.device)):
            return float(self.model(self.probe, self.probe).loss)  # clean inputs, no noise

    # -- convolution kernels --------------------------------------------------------------

    def _local_batch(self, n: int) -> int:
        """Images per step in this process: its share of the global batch, at most ``n``."""
        return min(self.config.batch_size // distributed.world() or 1, n)

    def _choose_conv_kernels(self, source: InMemory | Streamed) -> None:
        """Set :attr:`conv_kernels` the first time: tuned when enough steps are left to repay
        the tuning (:data:`TUNE_MIN_STEPS`), PyTorch's choice otherwise."""
        if self.conv_kernels is not None:
            return
        batch = max(self._local_batch(len(source)), 1)
        steps_left = (self.config.epochs - self.epoch) * math.ceil(len(source) / batch)
        if steps_left >= TUNE_MIN_STEPS:
            self._tune(source)
        else:
            self.conv_kernels = {}

    def tune_conv_kernels(self, x_train: torch.Tensor | Dataset) -> dict[str, Any]:
        """Choose :attr:`conv_kernels` now, by timing on the first training batch, however long
        the run (:meth:`fit` does it itself when at least :data:`TUNE_MIN_STEPS` steps are left).

        Only with ``conv_kernels="auto"`` and on a CPU (the kernels are timed, and run, in the
        trainer's precision); otherwise the choice stays PyTorch's (``{}``).
        """
        source = InMemory(self, x_train) if torch.is_tensor(x_train) else Streamed(self, x_train)
        return self._tune(source)

    def _tune(self, source: InMemory | Streamed) -> dict[str, Any]:
        self.conv_kernels, self.tuning_seconds = {}, 0.0
        batch = self._local_batch(len(source))
        wanted = self.config.conv_kernels == "auto"
        has_convs = any(kernels.supported(m) for m in self.model.modules())
        if not (wanted and has_convs) or self.device.type != "cpu" or not batch:
            return self.conv_kernels
        probe = source.probe(batch)  # (B, C, H, W) on the device
        start = time.perf_counter()
        dtype = torch.bfloat16 if self.precision == "bf16" else None
        self.conv_kernels = kernels.tune(self.model, probe, probe, dtype=dtype)
        self.tuning_seconds = time.perf_counter() - start
        return self.conv_kernels

    # -- the loop -------------------------------------------------------------------------

    def fit(
        self,
        x_train: torch.Tensor | Dataset,
        x_heldout: torch.Tensor | Dataset | None = None,
        *,
        x_validation: torch.Tensor | Dataset | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool | None = None,
        desc: str | None = None,
    ) -> list[dict[str, Any]]:
        """Train from ``self.epoch`` up to ``config.epochs``; returns the history.

        ``x_train``, ``x_heldout`` and ``x_validation`` are tensors ``(N, C, H, W)`` (moved whole
        to the device) or Datasets of ``(C, H, W)`` tensors (streamed with ``config.workers``
        processes). The held-out loss is only recorded; the validation loss is what early
        stopping (``config.patience``) watches, so pass images carved from the training people
        there (:func:`aelab.data.carve_validation`), never the test set.
        A model with ``needs_data_init`` (the ``aligned`` family) is initialised from the
        training images before the first epoch.
        ``callbacks`` run after the trainer's own, for this fit only. ``progress=None`` shows a
        bar only when the output is a terminal (and only on rank 0).
        """
        if not distributed.is_main():
            progress = False
        source, heldout_loss, validation_loss = self._sources(x_train, x_heldout, x_validation)
        if self.config.patience and validation_loss is None:
            raise ValueError(
                f"patience={self.config.patience} needs validation images: pass x_validation "
                "to fit (carved from the training set, never the test set)"
            )
        self.n_train = len(source)
        hooks = [*self.callbacks, *callbacks, ProgressBar(desc, progress)]
        self.stop_training = False
        with (
            torch.random.fork_rng(devices=rng_devices(self.device)),
            fast_cpu(self.device),
            contextlib.ExitStack() as stack,
        ):
            stack.callback(_close, hooks, self)
            threads = Threads() if self.device.type == "cpu" else None
            if threads is not None:
                stack.callback(threads.close)
            self._choose_conv_kernels(source)
            stack.enter_context(kernels.use(self.model, self.conv_kernels))
            self.probe = source.probe(min(len(source), PROBE_IMAGES))
            if self.epoch == 0 and getattr(self.model, "needs_data_init", False):
                self.model.init_from_data(source.probe(min(len(source), DATA_INIT_IMAGES)))
            for hook in hooks:
                hook.on_fit_start(self)
            while self.epoch < self.config.epochs and not self.stop_training:
                torch.manual_seed(epoch_seed(self.config.seed, self.epoch))
                if hasattr(self.model, "set_epoch"):  # a loss on a schedule (KL warm-up)
                    self.model.set_epoch(self.epoch)
                start, count = time.perf_counter(), torch.get_num_threads()
                loss = self._train_epoch(source)
                heldout = heldout_loss() if heldout_loss is not None else None
                validation = validation_loss() if validation_loss is not None else None
                loss_value = float(loss)  # the epoch's one host synchronisation
                self.epoch += 1
                record = {
                    "epoch": self.epoch,
                    "loss": loss_value,
                    "heldout_loss": None if heldout is None else float(heldout),
                    "validation_loss": None if validation is None else float(validation),
                    "seconds": time.perf_counter() - start,
                    "threads": count,
                }
                self.history.append(record)
                if threads is not None:
                    threads.update()
                for hook in hooks:
                    hook.on_epoch_end(self, record)
            for hook in hooks:
                hook.on_fit_end(self)
        return self.history


def _close(hooks: Sequence[Callback], trainer: Trainer) -> None:
    """Every hook's ``close``, in order, even when one of them raises."""
    with contextlib.ExitStack() as stack:
        for hook in reversed(hooks):  # the stack unwinds last in, first out
            stack.callback(hook.close, trainer)


__all__ = ["TUNE_MIN_STEPS", "Trainer", "epoch_seed"]
