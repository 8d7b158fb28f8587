"""Run directories: what train_run writes, checkpoints, resuming exactly, loading back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aelab.cli import main
from aelab.data.spec import DataSpec
from aelab.runs.config import RunConfig
from aelab.runs.run import load_run
from aelab.runs.training import resume_run, train_run
from aelab.training.config import TrainConfig


@pytest.fixture(scope="module")
def digits_spec():
    return DataSpec(source="digits", holdout=0.2, seed=0)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["deep", "vae", "denoising"])
def test_resume_equals_uninterrupted(name, digits_spec, tmp_path):
    cfg = dict(batch_size=64, seed=3, device="cpu", optimizer="adam")
    noise = "gaussian:0.05" if name == "denoising" else None
    full = train_run(name, digits_spec, TrainConfig(epochs=4, noise=noise, **cfg),
                     tmp_path / "full", progress=False)  # fmt: skip
    part = tmp_path / "part"
    train_run(name, digits_spec, TrainConfig(epochs=2, noise=noise, **cfg), part, progress=False)
    resumed = train_run(name, digits_spec, TrainConfig(epochs=4, **cfg), part, resume=True,
                        progress=False)  # fmt: skip
    wa, wb = _weights(full.model), _weights(resumed.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["loss"] for r in full.history] == [r["loss"] for r in resumed.history]
    assert len(json.loads((part / "history.json").read_text())) == 4


def test_run_directory_contents_and_load_run(digits_spec, tmp_path):
    out = tmp_path / "run"
    run = train_run("conv", digits_spec, TrainConfig(epochs=2, batch_size=128, device="cpu"),
                    out, progress=False)  # fmt: skip
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "history.json"} <= names
    assert not any(p.suffix in (".pt", ".pth", ".pkl") for p in out.iterdir())
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["name"] == "conv"
    assert config["versions"]["torch"] == torch.__version__
    assert config["data"]["source"] == "digits"
    assert config["split"]["image_shape"] == [1, 8, 8]
    history = json.loads((out / "history.json").read_text())
    keys = {"epoch", "loss", "heldout_loss", "validation_loss", "seconds", "threads"}
    assert [set(r) for r in history] == [keys] * 2

    loaded = load_run(out)
    split = loaded.data()
    x = split.heldout.images[:10]
    np.testing.assert_array_equal(loaded.encode(x), run.encode(x))
    z = loaded.encode(x)
    assert z.shape == (10, 32)
    np.testing.assert_array_equal(loaded.decode(z), run.decode(z))
    assert loaded.decode(z).shape == x.shape


def test_checkpoint_every(digits_spec, tmp_path, monkeypatch):
    from aelab.runs.rundir import RunDir

    saved_epochs = []
    original = RunDir.commit_checkpoint

    def spy(self, state):
        saved_epochs.append(state["epoch"])
        original(self, state)

    monkeypatch.setattr(RunDir, "commit_checkpoint", spy)
    out = tmp_path / "ck"
    train_run("deep", digits_spec,
              TrainConfig(epochs=5, batch_size=256, checkpoint_every=2, device="cpu"),
              out, progress=False)  # fmt: skip
    assert saved_epochs == [2, 4, 5]
    # one checkpoint in force, the final files published beside it, all recorded
    manifest = json.loads((out / "aelab-run.json").read_text())
    assert manifest["checkpoint"] == "checkpoint-000005" and manifest["complete"]
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock", "aelab-run.json", "checkpoint-000005", "config.json", "history.json",
        "model.safetensors",
    ]  # fmt: skip
    assert set(manifest["files"]) == {"config.json", "model.safetensors", "history.json"} | {
        f"checkpoint-000005/{n}"
        for n in ("model.safetensors", "optimizer.safetensors", "optimizer.json",
                  "history.json", "trainer.json")
    }  # fmt: skip


def test_resume_keeps_the_runs_own_schedule_unless_told(digits_spec, tmp_path):
    out = tmp_path / "run"
    train_run("deep", digits_spec, TrainConfig(epochs=3, batch_size=256, device="cpu"), out,
              progress=False)  # fmt: skip
    run = resume_run(out, progress=False)  # finished: nothing more to train
    assert [r["epoch"] for r in run.history] == [1, 2, 3]
    run = resume_run(out, epochs=5, progress=False)
    assert len(run.history) == 5 and RunConfig.load(out).train.epochs == 5
    assert len(load_run(out).history) == 5
    with pytest.raises(ValueError, match=r"epochs=4 is not valid: the run in .* has trained 5"):
        resume_run(out, epochs=4)
    assert RunConfig.load(out).train.epochs == 5  # the refusal changed nothing
    with pytest.raises(ValueError, match=r"model='conv' does not match the run in"):
        resume_run(out, model="conv")


def test_a_changed_data_set_is_refused(tmp_path, capsys):
    """Once 33 of 41 "held-out" images had been trained on after a folder changed."""
    from aelab.data import write_image_folder

    folder = write_image_folder(tmp_path / "faces", 40, image_size=8, n_classes=4)
    out = tmp_path / "run"
    base = ["train", "deep", "--data", str(folder), "--out", str(out), "--quiet"]
    assert main([*base, "--epochs", "1"]) == 0
    write_image_folder(tmp_path / "more", 8, image_size=8, n_classes=4, seed=9)
    for f in (tmp_path / "more").rglob("*.png"):  # new images join the classes
        f.rename(folder / f.parent.name / f"new-{f.name}")
    capsys.readouterr()
    assert main(["train", "deep", "--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "is not the data the run in" in line and "train and heldout images differ" in line
    with pytest.raises(ValueError, match=r"is not the data the run in"):
        load_run(out).data()
    assert len(load_run(out).history) == 1  # nothing trained on the changed data
