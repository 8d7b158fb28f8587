"""What a :class:`~aelab.train.Trainer` does besides stepping the optimizer, one small object each.

A callback gets the trainer at four moments: :meth:`Callback.on_fit_start` (after the convolution
kernels are chosen, before the first epoch), :meth:`Callback.on_epoch_end` (the epoch's record is
in ``trainer.history``; ``trainer.epoch`` counts it), :meth:`Callback.on_fit_end` (training ended
normally: all epochs done or ``trainer.stop_training`` set) and :meth:`Callback.close` (always,
even when an exception ends training). Callbacks run in the order given; the trainer puts its own
:class:`FiniteLoss` first and the progress bar last.

Here: :class:`FiniteLoss` (the NaN guard), :class:`EarlyStopping`, :class:`Checkpoint` and
:class:`ProgressBar`. Experiment trackers are callbacks too.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from aelab.training.noise import Noise
from aelab.utils import distributed

if TYPE_CHECKING:
    from aelab.training.trainer import Trainer


class Callback:
    """Base class: every hook does nothing."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch of :meth:`Trainer.fit` (also of a resumed run)."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After each epoch; ``record`` is ``trainer.history[-1]``."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch, when training ended normally."""

    def close(self, trainer: Trainer) -> None:
        """When :meth:`Trainer.fit` returns or raises: release what the callback holds."""


class FiniteLoss(Callback):
    """The NaN guard: stop with :class:`FloatingPointError` when an epoch's training, held-out or
    validation loss, any weight after the epoch's last step, or the model's outputs on the first
    training images in eval mode (:meth:`Trainer.probe_loss`: what a saved run would give, checked
    whether or not images are held out) are not finite.

    It runs before every other callback, so a checkpoint never stores diverged weights; the last
    good checkpoint stays in force. Checking the weights costs one reduction per parameter an
    epoch, and catches a last step that diverged after the loss was computed.
    """

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        epoch = record["epoch"]
        losses = (
            ("loss", "the loss"),
            ("heldout_loss", "the held-out loss"),
            ("validation_loss", "the validation loss"),
        )
        for key, what in losses:
            value = record.get(key)
            if value is not None and not math.isfinite(value):
                raise FloatingPointError(
                    f"training diverged at epoch {epoch}: {what} became {value}; {_remedy(trainer)}"
                )
        with torch.no_grad():
            bad = sum(int((~torch.isfinite(p)).sum()) for p in trainer.model.parameters())
        if bad:
            raise FloatingPointError(
                f"training diverged at epoch {epoch}: {bad:,} weights became NaN or infinite; "
                f"{_remedy(trainer)}"
            )
        probe = trainer.probe_loss()  # the outputs a saved run gives, whatever is held out
        if probe is not None and not math.isfinite(probe):
            raise FloatingPointError(
                f"training diverged at epoch {epoch}: the model's outputs on training images "
                f"became NaN or infinite (their loss: {probe}); lower learning_rate"
            )


def _remedy(trainer: Trainer) -> str:
    """What to change after a divergence. The learning rate, and the noise level when the inputs
    get Gaussian noise: its values have no bound (1e38 overflows float32 by itself; 1e10 already
    sends a VAE's log-variance past what exp() holds), while masks and salt-and-pepper keep the
    pixels in [0, 1]. Noise of a standard deviation >= 1 (the whole pixel range) is named
    first."""
    noise = trainer.corrupt
    if not (isinstance(noise, Noise) and noise.kind == "gaussian"):
        return "lower learning_rate"
    if noise.level >= 1:
        return f"the noise level may be too large: lower noise='{noise}', or learning_rate"
    return f"lower learning_rate, or the noise level (noise='{noise}')"


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Parameters
    ----------
    monitor : str, default="heldout_loss"
        A key of the epoch records: ``"validation_loss"`` (``x_validation`` of
        :meth:`Trainer.fit`, what ``TrainConfig.patience`` watches) or ``"heldout_loss"``
        (``x_heldout``). Watch validation data, never the test set: stopping on the test set
        tunes the model to it.
    patience : int, default=10
        Epochs without improvement before stopping.
    min_delta : float, default=0.0
        The smallest decrease that counts as an improvement.
    restore_best : bool, default=True
        At the end, put back the weights of the best epoch (kept on the device, one copy).

    Attributes
    ----------
    best : float
        The best value seen.
    best_epoch : int
        The epoch it was seen at (0 before any).
    """

    def __init__(
        self,
        monitor: str = "heldout_loss",
        patience: int = 10,
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience={patience!r} is not valid; expected an integer >= 1")
        if not (isinstance(min_delta, (int, float)) and math.isfinite(min_delta)):
            raise ValueError(f"min_delta={min_delta!r} is not valid; expected a finite number")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.restore_best = restore_best
        self.best, self.best_epoch = math.inf, 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.best, self.best_epoch, self._best_state = math.inf, 0, None

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        value = record.get(self.monitor)
        if value is None:
            raise ValueError(
                f"monitor={self.monitor!r} is not in the epoch records (keys: "
                f"{', '.join(record)}); pass x_heldout to fit to monitor heldout_loss"
            )
        if value < self.best - self.min_delta:
            self.best, self.best_epoch = value, record["epoch"]
            if self.restore_best:
                self._best_state = {
                    k: v.detach().clone() for k, v in trainer.model.state_dict().items()
                }
        elif record["epoch"] - self.best_epoch >= self.patience:
            trainer.stop_training = True

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._best_state is not None:
            trainer.model.load_state_dict(self._best_state)


class Checkpoint(Callback):
    """Commit the trainer's state to a run directory (:class:`aelab.runs.rundir.RunDir`: any
    object with ``commit_checkpoint(state)``, which :meth:`Trainer.state_dict` gives) every
    ``every`` epochs and at the end, each checkpoint whole or not at all.

    Under torch.distributed only rank 0 has the run directory (``rundir`` None elsewhere); every
    process waits until the checkpoint is whole, so none goes on (or exits) before it is.
    """

    def __init__(self, rundir: Any, every: int = 0) -> None:
        self.rundir, self.every = rundir, every
        self.saved_epoch: int | None = None

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if trainer.epoch == trainer.config.epochs or (
            self.every and trainer.epoch % self.every == 0
        ):
            self.save(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        # a run with nothing left to train, or one stopped early, still ends checkpointed (the
        # run directory skips a checkpoint it already has)
        if self.saved_epoch != trainer.epoch:
            self.save(trainer)

    def save(self, trainer: Trainer) -> None:
        if self.rundir is not None:
            self.rundir.commit_checkpoint(trainer.state_dict())
        self.saved_epoch = trainer.epoch
        distributed.barrier()


class ProgressBar(Callback):
    """A tqdm bar: epochs, loss, held-out loss and images per second.

    ``enabled=None`` shows it only when the output is a terminal.
    """

    def __init__(self, desc: str | None = None, enabled: bool | None = None) -> None:
        self.desc, self.enabled = desc, enabled
        self._bar: tqdm | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self._bar = tqdm(
            total=trainer.config.epochs,
            initial=trainer.epoch,
            desc=self.desc,
            unit="epoch",
            disable=None if self.enabled is None else not self.enabled,
            leave=True,
            dynamic_ncols=True,
        )

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self._bar.update(1)
        postfix = {"loss": f"{record['loss']:.5f}"}
        if record["heldout_loss"] is not None:
            postfix["heldout"] = f"{record['heldout_loss']:.5f}"
        postfix["img/s"] = f"{trainer.n_train / record['seconds']:,.0f}"
        self._bar.set_postfix(postfix, refresh=False)

    def close(self, trainer: Trainer) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


__all__ = ["Callback", "Checkpoint", "EarlyStopping", "FiniteLoss", "ProgressBar"]
