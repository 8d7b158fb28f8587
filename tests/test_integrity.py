"""Integrity that a deletion cannot turn off, ownership by digest, no silent divergence, and the
regressions of the second reliability round: each case as a user (or an attacker) would meet it,
through the command line, with the one line and the exit code it gets."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from aelab.cli import main
from aelab.estimator import Autoencoder
from aelab.models import BaseAutoencoder
from aelab.runs.manifest import MANIFEST
from aelab.runs.run import load_run
from aelab.utils.files import sha256_file

DEEP = ["train", "deep", "--data", "digits", "--quiet", "--batch-size", "512", "--device", "cpu"]


def _err(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1] if lines else ""


def _resign(folder: Path) -> None:
    """Record every file's current SHA-256 in the folder's manifest, as an attacker who knows
    the format would, so that the parsers behind the checksums are reached."""
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"] = {n: sha256_file(folder / n) for n in manifest["files"]}
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _edit_json(folder: Path, name: str, edit) -> None:
    path = folder / name
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    _resign(folder)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run of two epochs, checkpointed every epoch."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main([*DEEP, "--epochs", "2", "--checkpoint-every", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture
def run(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


# -- integrity is the default --------------------------------------------------------------------


def test_a_run_whose_manifest_was_deleted_is_refused_everywhere(run, tmp_path, capsys):
    (run / MANIFEST).unlink()
    data = bytearray((run / "model.safetensors").read_bytes())
    data[-5:] = b"\x00\x01\x02\x03\x04"  # and its weights damaged: nothing may notice less
    (run / "model.safetensors").write_bytes(bytes(data))
    for args in (
        ["evaluate", str(run)],
        ["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "x")],
        ["score", str(run), "digits"],
        ["train", "deep", "--out", str(run), "--resume", "--quiet"],
    ):
        assert main(args) == 2, args
        line = _err(capsys)
        assert f"has no {MANIFEST}" in line or "was written by aelab 0.1" in line, (args, line)
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="legacy=True"):
        load_run(run)
    with pytest.raises(ValueError, match="legacy=True"):
        Autoencoder.load(run)


def test_legacy_is_an_explicit_opt_in_and_says_so(run, capsys):
    (run / MANIFEST).unlink()
    assert load_run(run, legacy=True).legacy
    assert main(["evaluate", str(run), "--legacy"]) == 0
    err = capsys.readouterr().err
    assert "--legacy: a run without aelab-run.json is read unchecked" in err


def test_a_split_without_its_fingerprint_is_never_read_again(run, capsys):
    _edit_json(run, "config.json", lambda c: c["split"].pop("fingerprint"))
    for args in (["evaluate", str(run)], ["train", "deep", "--out", str(run), "--resume"]):
        assert main([*args, "--quiet"] if args[0] == "train" else args) == 2
        assert "records no fingerprint of its data split" in _err(capsys)


# -- ownership by digest ---------------------------------------------------------------------------


def test_files_named_like_a_run_with_a_copied_manifest_are_not_replaced(run, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("config.json", "model.safetensors", "history.json"):
        (mine / name).write_text(f"my own {name}")
    shutil.copy(run / MANIFEST, mine / MANIFEST)  # any aelab-run.json, copied in
    assert main([*DEEP, "--epochs", "1", "--out", str(mine), "--overwrite"]) == 2
    assert "holds files aelab did not write" in _err(capsys)
    assert (mine / "config.json").read_text() == "my own config.json"


def test_a_file_changed_since_aelab_wrote_it_keeps_its_run(run, capsys):
    (run / "history.json").write_text("[]")  # the user's edit: no longer what aelab wrote
    assert main([*DEEP, "--epochs", "1", "--out", str(run), "--overwrite"]) == 2
    assert "history.json" in _err(capsys) and (run / "history.json").read_text() == "[]"


def test_an_export_json_naming_a_users_file_does_not_get_it_deleted(run, tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export", str(run), "--format", "torchscript", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    record = json.loads((out / "export.json").read_text())
    record["files"]["notes.txt"] = "0" * 64  # listed, but not with its digest
    (out / "export.json").write_text(json.dumps(record))
    args = ["export", str(run), "--format", "torchscript", "--out", str(out), "--overwrite"]
    assert main(args) == 2
    assert "notes.txt" in _err(capsys) and (out / "notes.txt").read_text() == "mine"


def test_logs_never_go_inside_a_run_folder(run, tmp_path, capsys):
    inside = ["--log", f"tensorboard:{run / 'tb'}"]
    assert main([*DEEP, "--epochs", "1", "--out", str(run), "--overwrite", *inside]) == 2
    assert "writes inside the run folder" in _err(capsys)
    out = tmp_path / "runs" / "deep"
    assert main([*DEEP, "--epochs", "1", "--out", str(out), "--log", "tensorboard"]) == 0
    assert (tmp_path / "runs" / "tensorboard" / "deep").is_dir()  # beside the run
    assert not [p for p in out.iterdir() if "tensorboard" in p.name]


# -- no silent divergence -------------------------------------------------------------------------


def test_outputs_that_are_not_finite_are_never_saved(tmp_path, capsys, monkeypatch):
    """Weights and the training loss finite, every output of the trained model NaN: what a huge
    learning rate gave on one CPU, made here by construction."""
    decode = BaseAutoencoder.decode

    def nan_when_evaluated(self, z):
        x_hat = decode(self, z)
        return x_hat if self.training else x_hat * float("nan")

    monkeypatch.setattr(BaseAutoencoder, "decode", nan_when_evaluated)
    out = tmp_path / "run"
    assert main([*DEEP, "--holdout", "0.0", "--epochs", "2", "--out", str(out)]) == 1
    assert "outputs on training images became NaN or infinite" in _err(capsys)
    assert not out.exists()


# -- regressions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["gpu", "", "cuda:x", "cpu "])
def test_a_bad_device_is_one_line(device, run, capsys):
    assert main([*DEEP, "--epochs", "1", "--device", device, "--out", "x"]) == 2
    assert f"--device {shlex.quote(device)} is not valid" in _err(capsys)
    with pytest.raises(ValueError, match="is not valid"):
        Autoencoder.load(run, device=device)
    with pytest.raises(ValueError, match="is not valid"):
        load_run(run, device=device)


def test_train_without_out_names_the_folder_after_the_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*DEEP, "--epochs", "1"]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("deep-")
    assert f"wrote {Path('runs') / folder.name}:" in capsys.readouterr().out


# -- hand-edited run files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, edit",
    [
        ("trainer.json", lambda t: t.update(epoch=-1)),
        ("trainer.json", lambda t: t.update(epoch="2")),
        ("trainer.json", lambda t: t.update(conv_kernels={"encoder.0": ["fast"]})),
        ("trainer.json", lambda t: t.update(precision="fp8")),
        ("trainer.json", lambda t: t.update(epoch=50)),
        ("optimizer.json", lambda o: o["param_groups"][0].update(lr="fast")),
        ("optimizer.json", lambda o: o["param_groups"][0].update(betas=[0.9])),
        ("optimizer.json", lambda o: o["param_groups"][0].update(betas=[1.0, 0.999])),
        ("optimizer.json", lambda o: o["param_groups"][0].update(lr=0)),
        ("optimizer.json", lambda o: o["param_groups"][0].update(eps=-1e-8)),
        ("optimizer.json", lambda o: o["param_groups"][0].update(params=[0, 1])),
        ("optimizer.json", lambda o: o.update(state={"99": {}})),
    ],
)
def test_a_hand_edited_checkpoint_is_one_line_under_resume(name, edit, run, capsys):
    checkpoint = json.loads((run / MANIFEST).read_text())["checkpoint"]
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    _edit_json(run, f"{checkpoint}/{name}", edit)
    code = main(["train", "deep", "--out", str(run), "--resume", "--epochs", "3", "--quiet"])
    line = _err(capsys)
    assert code == 2 and "Traceback" not in line, line
    assert str(run) in line or name in line or "checkpoint" in line, line
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    assert {p: b for p, b in before.items() if p.name != ".lock"}.keys() <= after.keys()


def test_an_absurd_code_size_is_refused_before_anything_is_allocated(run, capsys):
    _edit_json(run, "config.json", lambda c: c["model"]["config"].update(latent_dim=10**12))
    assert main(["evaluate", str(run)]) == 2
    assert "it is not a model this machine can load" in _err(capsys)
    with pytest.raises(ValueError, match=r"config\.json"):
        load_run(run)
    assert torch.get_num_threads() >= 1  # still alive: nothing was allocated


@pytest.mark.slow
def test_ctrl_c_during_a_workshop_keeps_the_models_it_finished(tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "ws"
    args = [sys.executable, "-m", "aelab", "run", "--data", "digits", "--models", "shallow,deep",
            "--epochs", "400", "--device", "cpu", "--out", str(out), "--quiet"]  # fmt: skip
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:  # shallow finishes first; interrupt while deep trains
        lines.append(line)
        if line.startswith("shallow:"):
            break
    proc.send_signal(signal.SIGINT)
    err = "".join(lines) + proc.stderr.read()
    assert proc.wait(timeout=120) == 130, err
    assert "shallow kept in" in err and "--resume continues" in err, err
    assert (out / "shallow" / "model.safetensors").is_file()  # aelab run --resume: test_kills.py
