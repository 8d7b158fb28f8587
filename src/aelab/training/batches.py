"""Where a :class:`~aelab.train.Trainer`'s batches come from: a tensor on the device batched by
index, or a Dataset streamed through a DataLoader. Both give an epoch as the same iterator of
``(target, loss weight, samples)``, so the trainer has one epoch loop; each draws the epoch's
order when asked for it, before the first batch, so a resumed run draws what it would have.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from aelab.data.folders import worker_error_message
from aelab.utils import distributed

if TYPE_CHECKING:
    from aelab.training.trainer import Trainer


# One epoch's batches: (target (B, C, H, W) on the device, loss weight, samples counted).
Batches = Iterator[tuple[torch.Tensor, float, int]]


class InMemory:
    """A training tensor on the device, batched by index; each process its shard of a batch."""

    def __init__(self, trainer: Trainer, x: torch.Tensor) -> None:
        self.trainer = trainer
        self.x = x.to(trainer.device, memory_format=trainer.memory_format)

    def __len__(self) -> int:
        return len(self.x)

    def probe(self, n: int) -> torch.Tensor:
        return self.x[:n]

    def epoch(self, epoch: int) -> Batches:
        t = self.trainer
        n = len(self.x)
        # drawn now, from the epoch's seed, the same on every process
        if t.config.shuffle:
            order = torch.randperm(n, device=t.device)
        else:
            order = torch.arange(n, device=t.device)
        return self._batches(order.split(t.config.batch_size))

    def _batches(self, index_batches: Sequence[torch.Tensor]) -> Batches:
        world, rank = distributed.world(), distributed.rank()
        for idx in index_batches:
            idx, weight, n = distributed.shard(idx, world, rank)
            yield self.x[idx].contiguous(memory_format=self.trainer.memory_format), weight, n


class Streamed:
    """A Dataset read through a DataLoader; each process its own shard under torch.distributed."""

    def __init__(self, trainer: Trainer, dataset: Dataset) -> None:
        self.trainer, self.dataset = trainer, dataset
        world, batch_size = distributed.world(), trainer.config.batch_size
        if world == 1:
            self.loader = make_loader(trainer, dataset, batch_size, _EpochOrder(len(dataset)))
            return
        if batch_size % world:
            raise ValueError(
                f"batch_size={batch_size} is not valid with {world} processes; expected a "
                f"multiple of {world} (each process takes batch_size / {world} images a step)"
            )
        sampler = DistributedSampler(
            dataset,
            num_replicas=world,
            rank=distributed.rank(),
            shuffle=trainer.config.shuffle,
            seed=trainer.config.seed,
        )
        self.loader = make_loader(trainer, dataset, batch_size // world, sampler)

    def __len__(self) -> int:
        return len(self.dataset)

    def probe(self, n: int) -> torch.Tensor:
        t = self.trainer
        x = torch.stack([self.dataset[i] for i in range(n)])
        return x.to(t.device, memory_format=t.memory_format)

    def epoch(self, epoch: int) -> Batches:
        sampler = self.loader.sampler
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        else:  # drawn now, from the epoch's seed, as in memory
            n = len(sampler)
            sampler.order = torch.randperm(n) if self.trainer.config.shuffle else torch.arange(n)
        return self._batches()

    def _batches(self) -> Batches:
        t = self.trainer
        iterator = iter(self.loader)
        try:
            for batch in iterator:  # (B, C, H, W) on the host
                target = batch.to(t.device, non_blocking=True, memory_format=t.memory_format)
                yield target, 1.0, len(batch)
        except (ValueError, OSError) as e:
            # a worker's error arrives with its whole traceback in the message: keep the line
            # that says what is wrong, and stop the workers now (not at garbage collection)
            message = worker_error_message(e)
            if message != str(e):
                shutdown = getattr(iterator, "_shutdown_workers", None)
                if shutdown is not None:
                    shutdown()
                raise ValueError(message) from None
            raise


class _EpochOrder(Sampler[int]):
    """Indices in an order set before each epoch, so that persistent workers keep one sampler."""

    def __init__(self, n: int) -> None:
        self.order = torch.arange(n)

    def __iter__(self):
        return iter(self.order.tolist())

    def __len__(self) -> int:
        return len(self.order)


def make_loader(
    trainer: Trainer, dataset: Dataset, batch_size: int, sampler: Sampler | None
) -> DataLoader:
    """A DataLoader for ``trainer``: its workers, pinned memory on a GPU, seeded on its own."""
    workers = trainer.config.workers
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=trainer.device.type == "cuda",
        persistent_workers=workers > 0,
        # the loader draws a base seed per iterator: from its own generator, so the global RNG
        # (shuffle, noise) draws the same numbers as in the in-memory path
        generator=torch.Generator().manual_seed(trainer.config.seed),
    )
