"""Damaged and planted files: every file a reader uses is checked against the SHA-256 its run's
manifest records, a bad one is refused in one line naming it, and nothing is ever unpickled."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest

from aelab.cli import main
from aelab.estimator import Autoencoder
from aelab.runs.manifest import MANIFEST, Manifest
from aelab.runs.run import load_run
from aelab.runs.training import resume_run

DEEP = ["train", "deep", "--data", "digits", "--quiet", "--batch-size", "512"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "deep"
    assert main([*DEEP, "--epochs", "2", "--out", str(out), "--checkpoint-every", "1"]) == 0
    return out


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "deep"
    shutil.copytree(trained, copy)
    return copy


def _flip(path, offset=-64, n=64):
    data = bytearray(path.read_bytes())
    for i in range(n):
        data[offset + i] ^= 0xFF
    path.write_bytes(bytes(data))


def _readers(path):
    return (
        lambda: load_run(path),
        lambda: Autoencoder.load(path, device="cpu"),
        lambda: resume_run(path, epochs=3, progress=False),
    )


@pytest.mark.parametrize(
    ("damage", "where"),
    [
        (lambda p: _flip(p / "model.safetensors"), "model.safetensors"),
        (lambda p: _flip(p / "checkpoint-000002" / "model.safetensors"), "checkpoint-000002"),
        (lambda p: (p / "model.safetensors").write_bytes(
            (p / "model.safetensors").read_bytes()[:1000]), "model.safetensors"),
        (lambda p: (p / "history.json").write_text('[{"epoch": 1}]'), "history.json"),
        (lambda p: (p / "config.json").write_text(
            (p / "config.json").read_text().replace('"latent_dim": 20', '"latent_dim": 21')),
         "config.json"),
        (lambda p: shutil.copy(p / "checkpoint-000002" / "optimizer.safetensors",
                               p / "checkpoint-000002" / "model.safetensors"), "checkpoint-000002"),
        (lambda p: (p / "checkpoint-000002" / "trainer.json").unlink(), "trainer.json"),
    ],
)  # fmt: skip
def test_a_damaged_file_is_refused_by_every_reader_naming_it(run, damage, where):
    damage(run)
    refused = 0
    for reader in _readers(run):
        try:
            reader()
        except ValueError as e:
            assert where in str(e) and "\n" not in str(e)
            refused += 1
    # the final files are read by load_run and Autoencoder.load, the checkpoint by resume_run
    assert refused >= 1


def test_a_bit_flip_in_the_weights_is_refused_by_the_report(workshop, tmp_path, capsys):
    copy = tmp_path / "w"
    shutil.copytree(workshop, copy)
    _flip(copy / "conv" / "model.safetensors")
    assert main(["report", str(copy)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "conv/model.safetensors: its SHA-256 differs" in lines[0]


def test_a_malformed_manifest_is_one_line(run, capsys):
    (run / MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match=r"aelab-run.json: not valid JSON"):
        load_run(run)
    (run / MANIFEST).write_text(json.dumps({"aelab_run": 2, "kind": "train",
                                            "files": {"../../etc/passwd": "x"}}))  # fmt: skip
    with pytest.raises(ValueError, match=r"'files' must map relative paths inside the folder"):
        load_run(run)
    assert Manifest.read(run.parent) is None  # a folder without one: not aelab's


def test_a_planted_pickle_is_never_loaded(tmp_path, olivetti_home, monkeypatch):
    """Pickles anywhere in a run folder, or in a data home a run's files name, are never
    unpickled: the data home is the user's, and the Olivetti faces are read from the .mat."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    planted = pickle.dumps(Payload())
    evil = tmp_path / "evil_home"
    evil.mkdir()
    (evil / "olivetti_py3.pkz").write_bytes(planted)
    shutil.copy(olivetti_home / "olivettifaces.mat", evil / "olivettifaces.mat")
    out = tmp_path / "run"
    args = [*DEEP, "--data", "olivetti", "--data-home", str(evil), "--epochs", "1"]
    assert main([*args, "--out", str(out)]) == 0  # the user named this home: read, not unpickled
    for name in ("model.pkl", "optimizer.pt", "trainer.pkl", "checkpoint-000001/state.pt"):
        (out / name).write_bytes(planted)
    assert json.loads((out / "config.json").read_text())["data"]["data_home"] == str(evil)
    monkeypatch.setenv("AELAB_DATA_HOME", str(olivetti_home))
    split = load_run(out).data()  # from the user's data home, not the one config.json names
    assert len(split.train) == 360
    Autoencoder.load(out, device="cpu")
    assert main(["train", "deep", "--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert not marker.exists()
