"""Trainer callbacks: their order, the NaN guard, early stopping, checkpoints (by epochs and by
time), progress where stderr is not a terminal, and the trainer's own state (``state_dict`` /
``load_state_dict``) that checkpoints are made of."""

from __future__ import annotations

import re

import pytest
import torch

from aelab.models import build_model
from aelab.runs.rundir import RunDir
from aelab.runs.training import read_state
from aelab.training.callbacks import Callback, Checkpoint, EarlyStopping, ProgressBar
from aelab.training.config import TrainConfig
from aelab.training.trainer import Trainer


def _model(seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model("deep", (1, 8, 8), latent_dim=4, hidden=(16,))


def _data(n=96, seed=0):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Recorder(Callback):
    def __init__(self, log, name):
        self.log, self.name = log, name
        self.weights = {}

    def on_fit_start(self, trainer):
        self.log.append((self.name, "start", trainer.epoch))

    def on_epoch_end(self, trainer, record):
        assert record is trainer.history[-1] and record["epoch"] == trainer.epoch
        self.log.append((self.name, "epoch", trainer.epoch))
        self.weights[trainer.epoch] = _weights(trainer.model)

    def on_fit_end(self, trainer):
        self.log.append((self.name, "end", trainer.epoch))

    def close(self, trainer):
        self.log.append((self.name, "close", trainer.epoch))


def test_hooks_run_in_order_at_each_moment():
    log = []
    trainer = Trainer(_model(), TrainConfig(epochs=2, device="cpu"), callbacks=[Recorder(log, "a")])
    trainer.fit(_data(), callbacks=[Recorder(log, "b")], progress=False)
    assert log == [
        ("a", "start", 0), ("b", "start", 0),
        ("a", "epoch", 1), ("b", "epoch", 1),
        ("a", "epoch", 2), ("b", "epoch", 2),
        ("a", "end", 2), ("b", "end", 2),
        ("a", "close", 2), ("b", "close", 2),
    ]  # fmt: skip


def test_the_nan_guard_stops_before_any_other_callback_and_close_still_runs():
    log = []
    cfg = TrainConfig(epochs=3, device="cpu")
    trainer = Trainer(_model(), cfg, corrupt=lambda x: x * float("nan"))
    with pytest.raises(
        FloatingPointError, match=r"diverged at epoch 1: the loss became nan; lower learning_rate"
    ):
        trainer.fit(_data(), callbacks=[Recorder(log, "a")], progress=False)
    assert log == [("a", "start", 0), ("a", "close", 1)]


@pytest.mark.parametrize(
    ("noise", "learning_rate", "remedy"),
    [
        # float32 ends near 3.4e38: the noise itself holds infinities
        ("gaussian:1e38", None, "the noise level may be too large: lower noise='gaussian:1e+38', "
         "or learning_rate"),
        ("gaussian:0.1", 1e30, "lower learning_rate, or the noise level (noise='gaussian:0.1')"),
        ("mask:0.5", 1e30, "lower learning_rate"),  # masks and salt-and-pepper stay in [0, 1]
    ],
)  # fmt: skip
def test_the_nan_guard_names_the_noise_when_the_inputs_get_gaussian_noise(
    noise, learning_rate, remedy
):
    cfg = TrainConfig(epochs=2, device="cpu", optimizer="sgd", learning_rate=learning_rate,
                      noise=noise)  # fmt: skip
    with pytest.raises(FloatingPointError) as raised:
        Trainer(_model(), cfg).fit(_data(), progress=False)
    message = str(raised.value)
    assert message.startswith("training diverged at epoch 1: ") and message.endswith(remedy)


def test_state_dict_round_trip_continues_exactly():
    x, held = _data(), _data(32, seed=1)
    cfg = dict(batch_size=32, seed=4, device="cpu", noise="gaussian:0.1")
    full = Trainer(_model(), TrainConfig(epochs=4, **cfg))
    full.fit(x, held, progress=False)
    first = Trainer(_model(), TrainConfig(epochs=2, **cfg))
    first.fit(x, held, progress=False)
    state = first.state_dict()
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert set(state) == {"epoch", "history", "model", "optimizer", "conv_kernels", "precision"}
    resumed = Trainer(_model(seed=9), TrainConfig(epochs=4, **cfg))  # other initial weights
    resumed.load_state_dict(state)
    resumed.fit(x, held, progress=False)
    wa, wb = _weights(full.model), _weights(resumed.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]


def test_load_state_dict_refuses_weights_of_another_model():
    state = Trainer(_model(), TrainConfig(device="cpu")).state_dict()
    other = Trainer(build_model("shallow", (1, 8, 8)), TrainConfig(device="cpu"))
    with pytest.raises(ValueError, match=r"the checkpoint: weights do not fit the model"):
        other.load_state_dict(state)


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch():
    log = []
    recorder = Recorder(log, "r")
    # no epoch improves on the first by 10: it stays the best, and patience 2 ends at epoch 3
    stop = EarlyStopping(monitor="loss", patience=2, min_delta=10.0)
    trainer = Trainer(_model(), TrainConfig(epochs=20, device="cpu"))
    trainer.fit(_data(), callbacks=[recorder, stop], progress=False)
    assert [r["epoch"] for r in trainer.history] == [1, 2, 3]
    assert stop.best_epoch == 1 and stop.best == trainer.history[0]["loss"]
    restored, best = _weights(trainer.model), recorder.weights[1]
    assert all(torch.equal(restored[k], best[k]) for k in best)
    assert not all(torch.equal(restored[k], recorder.weights[3][k]) for k in best)


def test_early_stopping_on_heldout_loss_keeps_the_minimum():
    trainer = Trainer(_model(), TrainConfig(epochs=6, device="cpu"))
    stop = EarlyStopping(patience=50)
    trainer.fit(_data(), _data(32, seed=1), callbacks=[stop], progress=False)
    held = [r["heldout_loss"] for r in trainer.history]
    assert stop.best == min(held) and stop.best_epoch == held.index(min(held)) + 1
    assert len(held) == 6  # never stopped: patience not reached


def test_early_stopping_errors():
    with pytest.raises(ValueError, match=r"patience=0 is not valid; expected an integer >= 1"):
        EarlyStopping(patience=0)
    trainer = Trainer(_model(), TrainConfig(epochs=1, device="cpu"))
    with pytest.raises(ValueError, match=r"monitor='heldout_loss' is not in the epoch records"):
        trainer.fit(_data(), callbacks=[EarlyStopping()], progress=False)  # no held-out set


def test_checkpoint_every_and_at_the_end(tmp_path):
    saved = []

    class Spy(Checkpoint):
        def save(self, trainer):
            saved.append(trainer.epoch)
            super().save(trainer)

    trainer = Trainer(_model(), TrainConfig(epochs=5, device="cpu"))
    with RunDir.create(tmp_path / "run", kind="train") as rundir:
        trainer.fit(_data(), callbacks=[Spy(rundir, every=2)], progress=False)
    assert saved == [2, 4, 5]
    state = read_state(tmp_path / "run")
    assert state["epoch"] == 5 and len(state["history"]) == 5
    weights = _weights(trainer.model)
    assert all(torch.equal(state["model"][k], weights[k]) for k in weights)
    # stopped early: the stopping epoch is checkpointed at the end
    early = Trainer(_model(), TrainConfig(epochs=9, device="cpu"))
    stop = EarlyStopping(monitor="loss", patience=1, min_delta=10.0)
    with RunDir.create(tmp_path / "early", kind="train") as rundir:
        early.fit(_data(), callbacks=[stop, Spy(rundir)], progress=False)
    assert saved[-1] == 2 and read_state(tmp_path / "early")["epoch"] == 2


def test_checkpoint_by_time(tmp_path):
    """``seconds``: a checkpoint after each epoch that ends that long after the last one: with a
    moment, every epoch; with a long time, only the end. The setting is checked."""
    saved = []

    class Spy(Checkpoint):
        def save(self, trainer):
            saved.append(trainer.epoch)
            super().save(trainer)

    for seconds, expected in ((1e-9, [1, 2, 3, 4]), (1e9, [4])):
        saved.clear()
        trainer = Trainer(_model(), TrainConfig(epochs=4, device="cpu"))
        with RunDir.create(tmp_path / f"run-{seconds}", kind="train") as rundir:
            trainer.fit(_data(), callbacks=[Spy(rundir, seconds=seconds)], progress=False)
        assert saved == expected
    for bad in (-1, float("nan"), "30", True):
        with pytest.raises(ValueError, match=rf"checkpoint_seconds={bad!r} is not valid; expected"):
            TrainConfig(checkpoint_seconds=bad)


def test_the_nan_guard_checks_the_weights_and_the_heldout_loss():
    from aelab.training.callbacks import FiniteLoss

    trainer = Trainer(_model(), TrainConfig(epochs=1, device="cpu"))
    record = {"epoch": 3, "loss": 0.1, "heldout_loss": 0.2, "seconds": 1.0}
    FiniteLoss().on_epoch_end(trainer, record)  # all finite: nothing happens
    with pytest.raises(FloatingPointError, match=r"epoch 3: the held-out loss became inf"):
        FiniteLoss().on_epoch_end(trainer, {**record, "heldout_loss": float("inf")})
    with torch.no_grad():
        next(trainer.model.parameters())[0, :5] = float("nan")
    with pytest.raises(FloatingPointError, match=r"epoch 3: 5 weights became NaN or infinite"):
        FiniteLoss().on_epoch_end(trainer, record)


LINE = r"(m: )?epoch (\d+)/(\d+), loss \d\.\d{5}, held-out \d\.\d{5}, [\d,]+ img/s, \d+:\d\d so far"


def test_progress_lines_where_stderr_is_not_a_terminal(capsys):
    """pytest's stderr is no terminal: no bar, but lines: with every_seconds=0 one an epoch
    (the time left on all but the last), and by default at least the last; a resumed fit goes on
    counting; progress=False prints nothing."""
    data, held = _data(), _data(32, seed=1)
    trainer = Trainer(_model(), TrainConfig(epochs=3, device="cpu"))
    trainer.fit(data, held, callbacks=[ProgressBar("m", every_seconds=0)], progress=False)
    lines = capsys.readouterr().err.splitlines()
    assert [re.fullmatch(LINE + r"(, \d+:\d\d left)?", line).group(2) for line in lines] == [
        "1", "2", "3"
    ]  # fmt: skip
    assert lines[0].startswith("m: epoch 1/3, ") and lines[0].endswith(" left")
    assert not lines[-1].endswith(" left")
    trainer.config.epochs = 5  # resumed to train longer, with the trainer's own progress
    trainer.fit(data, held, progress=None, desc="m")
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(re.fullmatch(LINE + r"(, \d+:\d\d left)?", line) for line in lines)
    assert lines[-1].startswith("m: epoch 5/5, ") and len(lines) <= 2  # 4 and 5 at most
    trainer.config.epochs = 6
    trainer.fit(data, held, progress=False, desc="m")
    assert capsys.readouterr().err == ""
