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
import sys
import time
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
    ``every`` epochs, after the first epoch that ends ``seconds`` or more after the last
    checkpoint (or the start), and at the end, each checkpoint whole or not at all.

    Under torch.distributed only rank 0 has the run directory (``rundir`` None elsewhere); every
    process waits until the checkpoint is whole, so none goes on (or exits) before it is. By
    time, every process would decide on its own clock: rank 0 decides and tells the others.
    """

    def __init__(self, rundir: Any, every: int = 0, seconds: float = 0.0) -> None:
        self.rundir, self.every, self.seconds = rundir, every, seconds
        self.saved_epoch: int | None = None
        self._saved_at = 0.0

    def on_fit_start(self, trainer: Trainer) -> None:
        self._saved_at = time.monotonic()

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        due = trainer.epoch == trainer.config.epochs or (
            self.every and trainer.epoch % self.every == 0
        )
        if not due and self.seconds:
            due = distributed.broadcast(time.monotonic() - self._saved_at >= self.seconds)
        if due:
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
        self._saved_at = time.monotonic()


class ProgressBar(Callback):
    """Progress on stderr: a tqdm bar (epochs, loss, held-out loss, images per second) on a
    terminal; elsewhere (CI, ``nohup``, ``| tee``), where a bar would print nothing until the end,
    one line at most every ``every_seconds`` and one at the end.

    ``enabled=None`` (the command line's default) chooses by whether stderr is a terminal;
    ``True`` always shows the bar, ``False`` shows nothing (``--quiet``). A line per epoch would
    flood a log with the dense models' 400 epochs of 0.05 s; one at most every 10 s still says
    within 10 s (or one epoch, when an epoch is longer) that training is alive and how far it is.
    """

    def __init__(
        self, desc: str | None = None, enabled: bool | None = None, every_seconds: float = 10.0
    ) -> None:
        self.desc, self.enabled, self.every_seconds = desc, enabled, every_seconds
        self._bar: tqdm | None = None
        self._lines = False
        self._last_line = self._start = 0.0
        self._first_epoch = self._last_epoch = 0  # epochs done when the fit began; at the line

    def on_fit_start(self, trainer: Trainer) -> None:
        terminal = _is_terminal(sys.stderr)
        self._lines = self.enabled is None and not terminal
        self._start = self._last_line = time.monotonic()
        self._first_epoch = self._last_epoch = trainer.epoch  # a resumed run's, too
        self._bar = tqdm(
            total=trainer.config.epochs,
            initial=trainer.epoch,
            desc=self.desc,
            unit="epoch",
            disable=not (terminal if self.enabled is None else self.enabled),
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
        if self._lines and time.monotonic() - self._last_line >= self.every_seconds:
            self._line(trainer, record)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._lines and trainer.history and self._last_epoch != trainer.epoch:
            self._line(trainer, trainer.history[-1])

    def _line(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """``conv: epoch 37/200, loss 0.01234, held-out 0.01450, 215 img/s, 2:31 so far, 11:02
        left``: the time left from this fit's mean epoch."""
        now = time.monotonic()
        done, total = trainer.epoch, trainer.config.epochs
        elapsed = now - self._start
        parts = [f"epoch {done}/{total}", f"loss {record['loss']:.5f}"]
        if record["heldout_loss"] is not None:
            parts.append(f"held-out {record['heldout_loss']:.5f}")
        parts.append(f"{trainer.n_train / record['seconds']:,.0f} img/s")
        parts.append(f"{_clock(elapsed)} so far")
        if self._first_epoch < done < total:
            per_epoch = elapsed / (done - self._first_epoch)
            parts.append(f"{_clock(per_epoch * (total - done))} left")
        prefix = f"{self.desc}: " if self.desc else ""
        print(prefix + ", ".join(parts), file=sys.stderr, flush=True)
        self._last_line, self._last_epoch = now, done

    def close(self, trainer: Trainer) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _clock(seconds: float) -> str:
    """``M:SS``, or ``H:MM:SS`` from an hour."""
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


__all__ = ["Callback", "Checkpoint", "EarlyStopping", "FiniteLoss", "ProgressBar"]
