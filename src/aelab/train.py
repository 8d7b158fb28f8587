"""The generic training loop. Nothing here knows what an autoencoder is: it asks the model for
``model(x_in, target).loss`` and steps an optimizer.

Small data sets live whole on the device and are batched by index (no DataLoader, no workers, no
per-step host synchronisation: the running loss stays a device tensor until the epoch ends).
Data sets larger than memory come as a ``torch.utils.data.Dataset`` and stream through a
``DataLoader`` (worker processes, pinned memory, a ``DistributedSampler`` under
``torch.distributed``), with the same loss, corruption and single synchronisation per epoch.
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
import ctypes
import dataclasses
import functools
import math
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm.auto import tqdm

from . import distributed, kernels


class RMSprop(torch.optim.Optimizer):
    """RMSprop as Keras and TensorFlow define it, the notebook's optimizer:
    ``v = alpha v + (1 - alpha) g^2``, ``p -= lr g / sqrt(v + eps)``.

    ``torch.optim.RMSprop`` puts ``eps`` outside the root, ``g / (sqrt(v) + eps)``, so on the first
    step every weight moves by about ``lr / sqrt(1 - alpha)`` however small its gradient. On the
    notebook's VAE (4,096 inputs into 512 units) those coherent moves can blow the code up: with
    seed 0 its first-epoch loss was 7.55 instead of Keras' 0.032. With ``eps`` inside, as here,
    aelab's VAE follows the Keras port's loss to within 0.1% over 10 epochs.

    Where PyTorch has a fused Adam kernel (CPU, CUDA) and ``alpha > 0``, a step is one fused pass
    over each parameter: the kernel with ``beta1 = 0`` and no bias correction makes this update
    with ``eps = 0`` when its second moment holds ``v + eps``, which adding the constant
    ``eps (1 - alpha) / alpha`` before each step keeps true. On a 2-core x86 CPU, for the VAE's
    4.2M parameters, the kernel takes 1.6 ms per step and the add 0.2-1 ms, against 10.5 ms for
    the same update in ``foreach`` ops. The state is ``step`` and ``square_avg``, which holds
    ``v + eps``.
    """

    _NO_BIAS_CORRECTION = 1e12  # beta2 ** this == 0.0 in float32 for any beta2 < 1

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        alpha: float = 0.9,
        eps: float = 1e-7,
        fused: bool | None = None,
    ) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha={alpha!r} is not valid; expected 0 <= alpha < 1")
        if not eps > 0.0:
            raise ValueError(f"eps={eps!r} is not valid; expected a number > 0")
        if not lr >= 0.0:
            raise ValueError(f"lr={lr!r} is not valid; expected a number >= 0")
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "fused": fused})

    @staticmethod
    def fused_available(device: torch.device, alpha: float) -> bool:
        return hasattr(torch, "_fused_adam_") and device.type in ("cpu", "cuda") and alpha > 0

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            grads = [p.grad for p in params]
            square_avgs = []
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["square_avg"] = torch.full_like(
                        p, eps, memory_format=torch.preserve_format
                    )
                state["step"] += 1
                square_avgs.append(state["square_avg"])
            fused = group["fused"]
            if fused is None:
                fused = self.fused_available(params[0].device, alpha)
            if fused:
                self._fused_step(params, grads, square_avgs, lr, alpha, eps)
            else:
                torch._foreach_mul_(square_avgs, alpha)
                torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
                torch._foreach_add_(square_avgs, eps * (1 - alpha))
                torch._foreach_addcdiv_(params, grads, torch._foreach_sqrt(square_avgs), value=-lr)
        return loss

    def _fused_step(self, params, grads, square_avgs, lr, alpha, eps) -> None:
        if not self.fused_available(params[0].device, alpha):
            raise RuntimeError(
                f"fused=True is not available for {params[0].device.type} tensors with "
                f"alpha={alpha!r}; use fused=None"
            )
        torch._foreach_add_(square_avgs, eps * (1 - alpha) / alpha)
        no_correction = (
            torch.full((), self._NO_BIAS_CORRECTION, device=params[0].device)
            if params[0].device.type == "cuda"
            else torch.tensor(self._NO_BIAS_CORRECTION)
        )
        torch._fused_adam_(
            params,
            grads,
            grads,  # the first moment with beta1 = 0: the gradient, written onto itself
            square_avgs,
            [],
            [no_correction] * len(params),
            lr=lr,
            beta1=0.0,
            beta2=alpha,
            weight_decay=0.0,
            eps=0.0,
            amsgrad=False,
            maximize=False,
        )


OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    # Keras' defaults, which the notebook used: lr 1e-3, epsilon 1e-7, RMSprop rho 0.9.
    "adam": (torch.optim.Adam, {"lr": 1e-3, "eps": 1e-7}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3, "eps": 1e-7}),
    "rmsprop": (RMSprop, {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}),
    "sgd": (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}),
}
DEVICES = ("auto", "cpu", "cuda", "mps")
# "auto" is float32 everywhere: bfloat16 autocast has not been shown to keep the notebook's
# losses on a device where it is fast (on CPUs without native bfloat16 it is orders of magnitude
# slower; see benchmarks/README.md).
PRECISIONS = ("auto", "fp32", "bf16")
# "auto" times each large convolution's passes in oneDNN and PyTorch's own kernels on the CPU
# and runs each in the faster (aelab.kernels); "default" leaves the choice to PyTorch.
CONV_KERNELS = ("auto", "default")
# Tuning the conv model on a 2-core CPU costs about as much as 15 training steps and saves 7-15%
# of each step after, so it pays for itself after 100-200 steps: shorter runs are not tuned.
TUNE_MIN_STEPS = 200
EVAL_BATCH_SIZE = 512  # held-out batches of a streamed Dataset, as Trainer.evaluate's default


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
    workers: int = 0  # DataLoader processes reading a streamed Dataset; 0: in this process
    precision: str = "auto"  # fp32, bf16 (autocast) or auto (fp32; see PRECISIONS)
    conv_kernels: str = "auto"  # auto: each convolution's passes in their fastest CPU kernels

    def __post_init__(self) -> None:
        _positive_int("epochs", self.epochs, minimum=0)
        _positive_int("batch_size", self.batch_size)
        _positive_int("checkpoint_every", self.checkpoint_every, minimum=0)
        _positive_int("workers", self.workers, minimum=0)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer={self.optimizer!r} is not valid; allowed: {', '.join(OPTIMIZERS)}"
            )
        if self.learning_rate is not None and not (
            isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0
        ):
            raise ValueError(f"learning_rate={self.learning_rate!r} is not valid; expected > 0")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision={self.precision!r} is not valid; allowed: {', '.join(PRECISIONS)}"
            )
        if self.conv_kernels not in CONV_KERNELS:
            raise ValueError(
                f"conv_kernels={self.conv_kernels!r} is not valid; allowed: "
                f"{', '.join(CONV_KERNELS)}"
            )
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


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for ``precision`` on ``device``; ``auto`` is ``fp32`` (PRECISIONS)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not valid; allowed: {', '.join(PRECISIONS)}")
    return "fp32" if precision == "auto" else precision


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
    """The optimizer ``config`` names, with a fused kernel where the device has one.

    Fused Adam does one pass over each parameter instead of several: on a 2-core x86 CPU, an
    epoch of the notebook's deep model takes 0.22 -> 0.15 s of CPU time. RMSprop is
    :class:`RMSprop`, which fuses its own step where it can.
    """
    cls, defaults = OPTIMIZERS[config.optimizer]
    kwargs = dict(defaults)
    if config.learning_rate is not None:
        kwargs["lr"] = config.learning_rate
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    if cls in (torch.optim.Adam, torch.optim.AdamW) and device.type in ("cpu", "cuda"):
        kwargs["fused"] = True
    return cls(params, **kwargs)


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


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}


def _glibc():
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") else None
    except OSError:  # pragma: no cover - a Linux without a loadable C library
        return None


@contextlib.contextmanager
def keep_freed_memory(device: torch.device):
    """While training on a CPU with glibc, keep freed memory for the next step.

    glibc gives every allocation above 32 MiB its own ``mmap`` and returns it to the system when
    freed; the next step's activations then fault in fresh zeroed pages. For the notebook's conv
    model at batch 80 (39 MB activations) that was ~100,000 page faults and a quarter of each
    step in system time; with ``mmap`` off for large blocks and no trimming, freed blocks are
    reused: no faults, 0.60-0.68 -> 0.46-0.47 s per step (2-core x86 CPU). TensorFlow's allocator
    keeps its memory the same way.
    glibc's defaults are restored afterwards (and the kept memory is returned at the next free).
    """
    libc = _glibc() if device.type == "cpu" else None
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # mallopt takes a C int: the largest one
    try:
        yield
    finally:
        for param, value in _GLIBC_DEFAULTS.items():
            libc.mallopt(param, value)


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for one epoch, independent of how the run got there."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1)


class _EpochOrder(Sampler[int]):
    """Indices in an order set before each epoch, so that persistent workers keep one sampler."""

    def __init__(self, n: int) -> None:
        self.order = torch.arange(n)

    def __iter__(self):
        return iter(self.order.tolist())

    def __len__(self) -> int:
        return len(self.order)


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
        self.precision = resolve_precision(config.precision, self.device)
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, Any]] = []
        # module name -> kernels.ConvKernels, chosen at the first fit (or kept by a run
        # directory); None until then
        self.conv_kernels: dict[str, kernels.ConvKernels] | None = None
        self.tuning_seconds = 0.0  # time spent choosing them

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast when the precision is ``bf16``; otherwise nothing changes."""
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
        )

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
            total.add_(self._step(module, target, weight), alpha=n)
        return distributed.all_reduce_sum(total) / len(x)

    def _step(self, module: nn.Module, target: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
        """One optimizer step on the batch ``target``; returns its mean loss (detached).

        ``weight`` scales the loss this process contributes (see :func:`distributed.shard`).
        """
        x_in = self.corrupt(target) if self.corrupt is not None else target
        with self.autocast():
            loss = module(x_in, target).loss
        self.optimizer.zero_grad(set_to_none=True)
        (loss if weight == 1 else loss * weight).backward()  # 1 in one process
        self.optimizer.step()
        return loss.detach()

    def _loader(self, dataset: Dataset, batch_size: int, sampler: Sampler | None) -> DataLoader:
        workers = self.config.workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
            # the loader draws a base seed per iterator: from its own generator, so the global
            # RNG (shuffle, noise) draws the same numbers as in the in-memory path
            generator=torch.Generator().manual_seed(self.config.seed),
        )

    def _stream_loader(self, dataset: Dataset) -> DataLoader:
        """Training batches of ``dataset``: each process its own shard under torch.distributed."""
        if distributed.world() == 1:
            return self._loader(dataset, self.config.batch_size, _EpochOrder(len(dataset)))
        world, batch_size = distributed.world(), self.config.batch_size
        if batch_size % world:
            raise ValueError(
                f"batch_size={batch_size} is not valid with {world} processes; expected a "
                f"multiple of {world} (each process takes batch_size / {world} images a step)"
            )
        sampler = DistributedSampler(
            dataset,
            num_replicas=world,
            rank=distributed.rank(),
            shuffle=self.config.shuffle,
            seed=self.config.seed,
        )
        return self._loader(dataset, batch_size // world, sampler)

    def _train_stream_epoch(self, loader: DataLoader) -> torch.Tensor:
        """One pass over a streamed Dataset; returns the mean loss as a device scalar."""
        sampler = loader.sampler
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(self.epoch)
        else:  # from the epoch's seed, as in train_epoch, so a resumed run continues exactly
            n = len(sampler)
            sampler.order = torch.randperm(n) if self.config.shuffle else torch.arange(n)
        module = self._training_module()  # DistributedDataParallel under torchrun
        module.train()
        if distributed.rank():  # each process its own noise and sampling, as in train_epoch
            torch.manual_seed(epoch_seed(torch.initial_seed(), distributed.rank()))
        total = torch.zeros((), device=self.device)
        count = 0
        for batch in loader:  # (B, C, H, W) on the host
            target = batch.to(self.device, non_blocking=True, memory_format=self.memory_format)
            total.add_(self._step(module, target), alpha=len(target))
            count += len(target)
        if distributed.world() > 1:  # the mean over every process's shard
            sums = torch.stack([total, torch.tensor(float(count), device=self.device)])
            distributed.all_reduce_sum(sums)
            return sums[0] / sums[1]
        return total / max(count, 1)

    def _evaluate_stream(self, loader: DataLoader) -> torch.Tensor:
        """:meth:`evaluate` for a streamed Dataset, in the Dataset's order."""
        batches = (
            b.to(self.device, non_blocking=True, memory_format=self.memory_format) for b in loader
        )
        return self._mean_loss(batches, len(loader.dataset))

    def _epoch_functions(self, x_train, x_heldout):
        """``(train one epoch, held-out loss or None)`` for tensors or streamed Datasets."""
        for name, x in (("x_train", x_train), ("x_heldout", x_heldout)):
            allowed = (
                torch.is_tensor(x) or isinstance(x, Dataset) or (x is None and name != "x_train")
            )
            if not allowed:
                raise TypeError(
                    f"{name} is a {type(x).__name__}; expected a tensor (N, C, H, W) or a "
                    "torch.utils.data.Dataset of (C, H, W) tensors"
                )
        if torch.is_tensor(x_train):
            x_train = x_train.to(self.device, memory_format=self.memory_format)
            train = functools.partial(self.train_epoch, x_train)
        else:
            train = functools.partial(self._train_stream_epoch, self._stream_loader(x_train))
        if x_heldout is None or len(x_heldout) == 0:
            return train, None
        if torch.is_tensor(x_heldout):
            x_heldout = x_heldout.to(self.device, memory_format=self.memory_format)
            return train, functools.partial(self.evaluate, x_heldout)
        loader = self._loader(x_heldout, EVAL_BATCH_SIZE, sampler=None)
        return train, functools.partial(self._evaluate_stream, loader)

    def evaluate(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Mean loss on ``x`` in eval mode; corrupted with a fixed seed when denoising."""
        return self._mean_loss(x.split(batch_size), len(x))

    @torch.no_grad()
    def _mean_loss(self, batches, n: int) -> torch.Tensor:
        """Mean loss over ``batches`` (``n`` images in all, on the device), in eval mode."""
        self.model.eval()
        total = torch.zeros((), device=self.device)
        with torch.random.fork_rng(devices=_rng_devices(self.device)):
            torch.manual_seed(self.config.seed)
            for batch in batches:
                x_in = self.corrupt(batch) if self.corrupt is not None else batch
                total += self.model(x_in, batch).loss * len(batch)
        return total / max(n, 1)

    def _local_batch(self, n: int) -> int:
        """Images per step in this process: its share of the global batch, at most ``n``."""
        return min(self.config.batch_size // distributed.world() or 1, n)

    def _choose_conv_kernels(self, x_train: torch.Tensor | Dataset) -> None:
        """Set :attr:`conv_kernels` the first time: tuned when enough steps are left to repay
        the tuning (:data:`TUNE_MIN_STEPS`), PyTorch's choice otherwise."""
        if self.conv_kernels is not None:
            return
        batch = max(self._local_batch(len(x_train)), 1)
        steps_left = (self.config.epochs - self.epoch) * math.ceil(len(x_train) / batch)
        if steps_left >= TUNE_MIN_STEPS:
            self.tune_conv_kernels(x_train)
        else:
            self.conv_kernels = {}

    def tune_conv_kernels(self, x_train: torch.Tensor | Dataset) -> dict[str, Any]:
        """Choose :attr:`conv_kernels` now, by timing on the first training batch, however long
        the run (:meth:`fit` does it itself when at least :data:`TUNE_MIN_STEPS` steps are left).

        Only with ``conv_kernels="auto"``, on a CPU and in float32 (the kernels are timed, and
        run, in the precision of the weights); otherwise the choice stays PyTorch's (``{}``).
        """
        self.conv_kernels, self.tuning_seconds = {}, 0.0
        batch = self._local_batch(len(x_train))
        wanted = self.config.conv_kernels == "auto" and self.precision == "fp32"
        has_convs = any(kernels.supported(m) for m in self.model.modules())
        if not (wanted and has_convs) or self.device.type != "cpu" or not batch:
            return self.conv_kernels
        if torch.is_tensor(x_train):
            probe = x_train[:batch]
        else:
            probe = torch.stack([x_train[i] for i in range(batch)])
        probe = probe.to(self.device, memory_format=self.memory_format)  # (B, C, H, W)
        start = time.perf_counter()
        self.conv_kernels = kernels.tune(self.model, probe, probe)
        self.tuning_seconds = time.perf_counter() - start
        return self.conv_kernels

    def fit(
        self,
        x_train: torch.Tensor | Dataset,
        x_heldout: torch.Tensor | Dataset | None = None,
        on_epoch_end: Callable[[Trainer], None] | None = None,
        progress: bool | None = None,
        desc: str | None = None,
    ) -> list[dict[str, Any]]:
        """Train from ``self.epoch`` up to ``config.epochs``; returns the history.

        ``x_train`` and ``x_heldout`` are tensors ``(N, C, H, W)`` (moved whole to the device)
        or Datasets of ``(C, H, W)`` tensors (streamed with ``config.workers`` processes).
        ``progress=None`` shows a bar only when the output is a terminal (and only on rank 0).
        """
        if not distributed.is_main():
            progress = False
        train_one, heldout_loss = self._epoch_functions(x_train, x_heldout)
        bar = tqdm(
            total=self.config.epochs,
            initial=self.epoch,
            desc=desc,
            unit="epoch",
            disable=(None if progress is None else not progress),
            leave=True,
            dynamic_ncols=True,
        )
        with (
            torch.random.fork_rng(devices=_rng_devices(self.device)),
            flush_denormals(),
            keep_freed_memory(self.device),
            bar,
            contextlib.ExitStack() as stack,
        ):
            self._choose_conv_kernels(x_train)
            if self.precision == "fp32":  # see _choose_conv_kernels
                stack.enter_context(kernels.use(self.model, self.conv_kernels))
            while self.epoch < self.config.epochs:
                torch.manual_seed(epoch_seed(self.config.seed, self.epoch))
                start = time.perf_counter()
                loss = train_one()
                heldout = heldout_loss() if heldout_loss is not None else None
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
