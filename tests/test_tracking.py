"""Experiment tracking (``--log``, ``log=``): what TensorBoard and MLflow get, read back with
their own readers, and that nothing of theirs is imported or written without ``log``.

MLflow's import costs seconds: only the CLI and estimator tests use it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from aelab.cli import build_parser, main
from aelab.models import build_model
from aelab.runs.ownership import foreign_entries
from aelab.training import tracking
from aelab.training.config import TrainConfig
from aelab.training.trainer import Trainer

EPOCHS = 3


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory) -> Path:
    """200 of scikit-learn's 8x8 digits with their labels, as the CLI reads arrays."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path_factory.mktemp("arrays") / "digits200.npz"
    images = (digits.images[:200] * 16).clip(0, 255).astype(np.uint8)  # (N, 8, 8)
    np.savez(path, images=images, labels=digits.target[:200])
    return path


def _events(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    guidance = {"scalars": 0, "images": 0, "tensors": 0}  # 0: keep every event
    return EventAccumulator(str(log_dir), size_guidance=guidance).Reload()


def _check_projector(log_dir: Path, n: int, latent_dim: int) -> None:
    """projector_config.pbtxt names the codes, their tensor and sprite files, all consistent."""
    config = (log_dir / "projector_config.pbtxt").read_text()
    paths = dict(
        line.strip().replace('"', "").split(": ", 1)
        for line in config.splitlines()
        if line.strip().endswith('"')
    )
    assert paths["tensor_name"].startswith("codes:")
    rows = (log_dir / paths["tensor_path"]).read_text().splitlines()
    assert len(rows) == n and all(len(r.split("\t")) == latent_dim for r in rows)
    assert len((log_dir / paths["metadata_path"]).read_text().splitlines()) == n
    from PIL import Image

    with Image.open(log_dir / paths["image_path"]) as sprite:
        side = int(np.ceil(np.sqrt(n)))
        assert sprite.size == (side * 8, side * 8)  # 8x8 thumbnails, side x side of them
    assert "single_image_dim: 8" in config


def _digits(n: int) -> tuple[torch.Tensor, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.tensor(digits.images[:n, None] / 16, dtype=torch.float32), digits.target[:n]


def test_log_names_trackers_or_says_what_is_allowed():
    parse = tracking.parse_log
    assert parse(None) == parse("") == parse([]) == ()
    assert parse("tensorboard") == (tracking.Target("tensorboard", None),)
    both = parse("tensorboard:tb/x, mlflow:file:/tmp/ml")  # the URI keeps its own colon
    assert both == (("tensorboard", "tb/x"), ("mlflow", "file:/tmp/ml"))
    twice = parse(["mlflow", "TensorBoard:tb", "mlflow"])  # repeated, and any case
    assert twice == (("mlflow", None), ("tensorboard", "tb"))
    assert tracking.Target("tensorboard", "tb").for_model("deep") == ("tensorboard", "tb/deep")
    with pytest.raises(ValueError, match=r"log='wandb' is not valid; allowed: tensorboard\[:DIR\]"):
        parse("tensorboard,wandb")
    with pytest.raises(ValueError, match="expected a string"):
        parse([3])
    assert tracking.flatten({"model": {"latent_dim": 4, "hidden": (8,), "beta": None}}) == {
        "model.latent_dim": 4, "model.hidden": "(8,)", "model.beta": "None"
    }  # fmt: skip


def test_bad_log_and_missing_extra_are_one_line_exit_2(digits_npz, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    base = ["train", "shallow", "--data", str(digits_npz), "--out", str(out), "--quiet"]
    assert main([*base, "--log", "wandb"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--log wandb is not valid; allowed: tensorboard[:DIR]" in err[0]
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    assert main([*base, "--log", "tensorboard,mlflow"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith('not installed: pip install "aelab[mlflow]"')
    assert main(["run", "--data", str(digits_npz), "--log", "mlflow", "--out", str(out)]) == 2
    assert 'pip install "aelab[mlflow]"' in capsys.readouterr().err
    assert not out.exists()


def _mlflow_fails_fast(digits_npz, out, uri, capsys) -> float:
    """Train with ``--log mlflow:URI``: one line naming the URI, exit 2, nothing written, and
    the variables aelab set for MLflow gone again; the seconds it took."""
    import mlflow.tracking  # noqa: F401  (its import is not what is timed)

    args = ["train", "shallow", "--data", str(digits_npz), "--out", str(out), "--quiet"]
    start = time.monotonic()
    assert main([*args, "--log", f"mlflow:{uri}"]) == 2
    seconds = time.monotonic() - start
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.endswith("\n") and err.count("error") == 1, err
    last = err.strip().splitlines()[-1]  # after the line about the data
    assert last.startswith(f"aelab train: error: --log mlflow:{uri} cannot be opened: ")
    assert not out.exists()
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    return seconds


def test_an_mlflow_server_that_refuses_is_one_line_in_seconds(digits_npz, tmp_path, capsys):
    # MLflow retried a refused connection 7 times, backing off from 2 s: over four minutes
    with socket.socket() as closed:  # bound, never listening: a connection is refused
        closed.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{closed.getsockname()[1]}"
        seconds = _mlflow_fails_fast(digits_npz, tmp_path / "run", uri, capsys)
    assert seconds < 15


@pytest.mark.slow
def test_an_mlflow_server_that_never_answers_is_one_line_in_seconds(
    digits_npz, tmp_path, capsys, monkeypatch
):
    # a server that takes the connection and says nothing: MLflow waited 120 s a try, 8 tries
    with socket.create_server(("127.0.0.1", 0)) as silent:
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        seconds = _mlflow_fails_fast(digits_npz, tmp_path / "run", uri, capsys)
        assert tracking.PROBE_TIMEOUT <= seconds < tracking.PROBE_TIMEOUT + 10
        longer = str(tracking.PROBE_TIMEOUT + 3)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", longer)  # the user's own setting wins
        seconds = _mlflow_fails_fast(digits_npz, tmp_path / "run", uri, capsys)
        assert tracking.PROBE_TIMEOUT + 3 <= seconds < tracking.PROBE_TIMEOUT + 13
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == longer


@pytest.mark.slow
def test_nothing_is_imported_or_written_without_log(digits_npz, tmp_path):
    script = f"""
import sys
import numpy as np
import aelab
from aelab.cli import main
assert main(["train", "shallow", "--data", {str(digits_npz)!r}, "--epochs", "1", "--out",
             "run", "--quiet"]) == 0
aelab.Autoencoder(model="shallow", latent_dim=2, epochs=1, device="cpu").fit(np.random.rand(40, 6))
loaded = [m for m in ("tensorboard", "mlflow", "torch.utils.tensorboard") if m in sys.modules]
assert not loaded, loaded
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no runs/ of trackers
    assert not {"tensorboard", "mlruns"} & {p.name for p in (tmp_path / "run").iterdir()}


def test_tensorboard_gets_curves_images_hparams_and_projector(tmp_path):
    x, labels = _digits(160)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("shallow", (1, 8, 8), latent_dim=4)
    heldout = tracking.Heldout(x[120:], [str(k) for k in labels[120:]])
    logger = tracking.TensorBoardLogger(
        tmp_path / "tb", params={"model": {"latent_dim": 4}}, heldout=heldout, image_every=2
    )
    trainer = Trainer(model, TrainConfig(epochs=EPOCHS, device="cpu", batch_size=32))
    trainer.fit(x[:100], x[120:], x_validation=x[100:120], callbacks=[logger], progress=False)

    events = _events(tmp_path / "tb")
    for tag in ("loss/train", "loss/heldout", "loss/validation", "lr"):
        assert [e.step for e in events.Scalars(tag)] == list(range(1, EPOCHS + 1)), tag
    heldout_curve = [e.value for e in events.Scalars("loss/heldout")]
    assert heldout_curve == pytest.approx([r["heldout_loss"] for r in trainer.history])
    assert events.Scalars("final/validation_loss")[0].value == pytest.approx(
        trainer.history[-1]["validation_loss"]
    )
    images = events.Images("reconstructions")
    assert [i.step for i in images] == [2, 3]  # every 2 epochs, and at the end
    assert (images[0].width, images[0].height) == (8 * 34 + 2, 2 * 34 + 2)  # 8 tiles of 32 + gap
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")
    _check_projector(tmp_path / "tb", n=40, latent_dim=4)


@pytest.mark.slow
def test_cli_train_logs_to_tensorboard_and_mlflow(digits_npz, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads file stores so
    out = tmp_path / "run"
    args = ["train", "shallow", "--data", str(digits_npz), "--epochs", "2", "--out", str(out),
            "--latent-dim", "5", "--quiet", "--log", "tensorboard", "--log", "mlflow"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    logs = tmp_path / "tensorboard" / "run"  # beside the run folder, never inside it
    events = _events(logs)
    assert [e.step for e in events.Scalars("loss/heldout")] == [1, 2]
    assert "reconstructions" in events.Tags()["images"]
    n_heldout = json.loads((out / "config.json").read_text())["split"]["n_heldout"]
    _check_projector(logs, n=n_heldout, latent_dim=5)
    labels = (logs / "00002" / "codes" / "metadata.tsv").read_text().split()
    assert set(labels) <= {str(k) for k in range(10)}

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("aelab")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "shallow" and run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "loss/train")) == 2
    assert run.data.params["model.latent_dim"] == "5" and run.data.params["train.epochs"] == "2"
    assert {"final/loss", "final/heldout_loss"} <= set(run.data.metrics)
    pictures = client.list_artifacts(run.info.run_id, "reconstructions")
    assert [p.path for p in pictures] == ["reconstructions/epoch-000002.png"]
    # nothing of the trackers inside the run: it is replaced as any run, and the logs stay
    assert foreign_entries(out) == [] and not (out / "tensorboard").exists()
    assert main([*args[:-4], "--overwrite"]) == 0
    assert [e.step for e in _events(logs).Scalars("loss/heldout")] == [1, 2]


def test_estimator_logs_with_log_param(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    from sklearn.base import clone

    from aelab import Autoencoder

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    x = _digits(100)[0][:, 0].numpy()  # (n, 8, 8) images
    uri = (tmp_path / "ml").as_uri()
    log = f"tensorboard:{tmp_path / 'tb'},mlflow:{uri}"
    ae = Autoencoder(model="shallow", latent_dim=3, epochs=2, random_state=0, device="cpu", log=log)
    assert clone(ae).get_params()["log"] == log
    ae.fit(x)
    assert len(_events(tmp_path / "tb").Scalars("loss/train")) == 2
    _check_projector(tmp_path / "tb", n=10, latent_dim=3)  # the calibration share: 10 of 100
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("aelab").experiment_id])
    assert len(client.get_metric_history(run.info.run_id, "loss/train")) == 2
    assert run.data.params["model.latent_dim"] == "3" and run.info.run_name == "shallow"
    with pytest.raises(ValueError, match="log='neptune' is not valid"):
        Autoencoder(log="neptune").fit(x)


def test_only_rank_0_logs(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking.distributed, "is_main", lambda: False)
    logger = tracking.TensorBoardLogger(tmp_path / "tb")
    model = build_model("shallow", (1, 8, 8), latent_dim=2)
    Trainer(model, TrainConfig(epochs=1, device="cpu")).fit(
        torch.rand(16, 1, 8, 8), callbacks=[logger], progress=False
    )
    assert not (tmp_path / "tb").exists()


def test_aelab_run_gives_each_model_its_own_tensorboard_folder(digits_npz, tmp_path):
    from aelab.apps.workshop import run_workshop
    from aelab.data.spec import DataSpec

    args = build_parser().parse_args(["run", "--log", "tensorboard:tb", "--log", "mlflow"])
    assert args.log == ["tensorboard:tb", "mlflow"]
    run_workshop(DataSpec(source=str(digits_npz)), tmp_path / "ws", models=["shallow"],
                 train={"epochs": 1}, report=False,
                 tracking=f"tensorboard:{tmp_path / 'tb'}")  # fmt: skip
    assert [e.step for e in _events(tmp_path / "tb" / "shallow").Scalars("loss/train")] == [1]
