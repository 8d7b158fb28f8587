"""``aelab run`` end to end: every sub-run written, one shared split with held-out people kept
out, the workshop record, and its user errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from aelab.apps.workshop import WORKSHOP_MODELS
from aelab.cli import main
from aelab.data.prepare import prepare_data
from aelab.data.spec import DataSpec

FIVE = list(WORKSHOP_MODELS)


def test_run_writes_every_sub_run_metrics_figures_report(workshop):
    for name in FIVE:
        assert (workshop / name / "model.safetensors").is_file()
        assert (workshop / name / "config.json").is_file()
    m = json.loads((workshop / "metrics.json").read_text())
    assert set(m["data"]) >= {"name", "n_train", "n_heldout", "image_shape", "split"}
    assert m["data"]["name"] == "digits"
    assert m["data"]["image_shape"] == [1, 8, 8]
    assert set(m["models"]) == set(FIVE) and m["missing"] == []
    for name, entry in m["models"].items():
        keys = {"code_size", "epochs", "train_seconds", "dead_units", "heldout", "pca"}
        assert keys <= set(entry)
        for part in ("heldout", "pca"):
            assert {"mse", "psnr", "ssim", "knn_accuracy"} <= set(entry[part]), (name, part)
            assert 0 <= entry[part]["mse"] < 1 and -1 <= entry[part]["ssim"] <= 1
        assert entry["epochs"] == 3
    assert set(m["models"]["denoising"]["denoising"]) >= {"noisy_psnr", "denoised_psnr"}
    assert "denoising" not in m["models"]["deep"]


def test_heldout_people_never_in_training_and_counts(workshop):
    m = json.loads((workshop / "metrics.json").read_text())
    split = prepare_data(DataSpec(source="digits", holdout_people=2, normals=0.1, mirror=True))
    assert set(np.unique(split.heldout.labels)) == {8, 9}
    assert not set(np.unique(split.train.labels)) & {8, 9}
    assert m["data"]["n_train"] == len(split.train) and m["data"]["n_heldout"] == len(split.heldout)
    # the usual images of the anomaly section: every training digit, none of them trained on
    assert set(np.unique(split.normals.labels)) == set(range(8))
    seen = {row.tobytes() for row in split.train.images}
    assert not any(row.tobytes() in seen for row in split.normals.images)
    n = m["data"]["normals"]
    assert n["n_calibration"] + n["n_test"] == len(split.normals)
    assert "leave-one-out" in m["data"]["split"]["knn"]


def test_run_user_errors(workshop, tmp_path, capsys):
    bad = ["run", "--data", "digits", "--models", "conv,foo", "--out", str(tmp_path / "x")]
    assert main(bad) == 2
    assert "--models: 'foo' is not a known model; allowed:" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["run", "--data", "digits", "--out", str(workshop)]) == 2
    assert "already holds files; pass --overwrite" in capsys.readouterr().err
    # stopped while writing its final report: the partial page is what remains
    stopped = tmp_path / "stopped"
    shutil.copytree(workshop, stopped)
    metrics = json.loads((stopped / "metrics.json").read_text())
    (stopped / "metrics.json").write_text(json.dumps({**metrics, "partial": True}))
    assert main(["run", "--data", "digits", "--out", str(stopped)]) == 2
    assert "holds an unfinished workshop; pass --resume" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no workshop.json" in capsys.readouterr().err


def test_a_model_named_twice_is_refused_before_anything_is_read(tmp_path, capsys):
    # it trained the first shallow, then failed on the second
    out = tmp_path / "w"
    for data in (str(tmp_path / "not-read.npz"), "digits"):  # a missing file: never opened
        code = main(["run", "--data", data, "--models", "shallow,deep,shallow", "--out", str(out),
                     "--epochs", "1", "--quiet"])  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert "--models shallow,deep,shallow is not valid: it names shallow twice" in err[0]
        assert not out.exists()


def test_the_workshop_record(workshop):
    record = json.loads((workshop / "workshop.json").read_text())
    assert record["schedule"] == "quick, 3 epochs" and record["models"] == FIVE
    assert set(record["seconds"]) == set(FIVE) and record["data"]["source"] == "digits"
    metrics = json.loads((workshop / "metrics.json").read_text())
    assert metrics["schedule"] == "quick, 3 epochs"


def test_the_old_preset_flag_still_names_the_schedule():
    from aelab.cli import build_parser

    args = build_parser().parse_args(["run", "--preset", "seed"])
    assert args.schedule == "seed"


def test_a_workshops_models_checkpoint_by_time(workshop):
    """Each model of aelab run records checkpoint_seconds 30 (a checkpoint after the first epoch
    30 s after the last: an interrupted model loses at most about that), resumed runs too;
    --checkpoint-seconds sets another."""
    from aelab.apps.workshop import CHECKPOINT_SECONDS
    from aelab.runs.config import RunConfig

    assert CHECKPOINT_SECONDS == 30
    for name in FIVE:
        assert RunConfig.load(workshop / name).train.checkpoint_seconds == 30


@pytest.mark.slow  # trains workshops
def test_the_report_appears_after_the_first_model_and_is_partial_until_the_last(tmp_path):
    """While a workshop trains, report.html holds the models trained so far and says which are
    still training; the last report replaces it, whole."""
    from aelab.apps.workshop import run_workshop

    out, seen = tmp_path / "ws", []

    def log(line: str) -> None:
        if line.startswith("report so far"):
            page = (out / "report.html").read_text()
            metrics = json.loads((out / "metrics.json").read_text())
            seen.append((line, page, metrics))

    run_workshop(DataSpec(source="digits"), out, models=["shallow", "deep", "vae"],
                 train={"epochs": 1}, progress=False, log=log)  # fmt: skip
    assert len(seen) == 2  # after shallow and after deep; the last model's is the full report
    line, page, metrics = seen[0]
    assert line.startswith(f"report so far: {(out / 'report.html').resolve().as_uri()}")
    assert "Partial report: deep, vae still training" in page
    assert list(metrics["models"]) == ["shallow"] and metrics["partial"] is True
    assert metrics["robustness"] is None and metrics["missing"] == ["deep", "vae"]
    assert "Partial report: vae still training" in seen[1][1]
    final = json.loads((out / "metrics.json").read_text())
    assert "partial" not in final and list(final["models"]) == ["shallow", "deep", "vae"]
    assert final["robustness"] is not None
    assert "Partial report" not in (out / "report.html").read_text()


def test_the_first_command_is_the_notebooks_faces_mirrored_with_faces_beside_the_five(tmp_path):
    from aelab.cli.commands import _data_spec, _models
    from aelab.cli.config import parse
    from aelab.cli.parser import build_parser

    parser = build_parser()
    args = parser.parse_args(["run"])
    spec = _data_spec(args)
    assert spec.source == "olivetti" and spec.mirror is True
    assert _models(args) == [*FIVE, "faces"]
    digits = parser.parse_args(["run", "--data", "digits"])
    assert _data_spec(digits).mirror is False and _models(digits) == FIVE
    assert _data_spec(parser.parse_args(["run", "--no-mirror"])).mirror is False
    assert _data_spec(parser.parse_args(["run", "--data", "digits", "--mirror"])).mirror is True
    assert _models(parser.parse_args(["run", "--models", "deep, vae"])) == ["deep", "vae"]
    # a configuration file's mirror = false on the faces is --no-mirror, not ignored
    toml = tmp_path / "run.toml"
    toml.write_text("mirror = false\n")
    assert _data_spec(parse(parser, ["run", "--config", str(toml)])).mirror is False
    toml.write_text('data = "digits"\nmirror = true\n')
    assert _data_spec(parse(parser, ["run", "--config", str(toml)])).mirror is True
    # aelab train keeps its default data, unmirrored
    train = parser.parse_args(["train", "deep"])
    assert train.data == "mnist" and _data_spec(train).mirror is False


@pytest.mark.slow  # trains workshops
def test_a_partial_report_that_fails_never_stops_the_training(tmp_path, monkeypatch):
    import aelab.apps.workshop as workshop

    real, lines = workshop.build_report, []

    def build_report(*args, partial=False, **kwargs):
        if partial:
            raise ValueError("a figure could not be drawn")
        return real(*args, **kwargs)

    monkeypatch.setattr(workshop, "build_report", build_report)
    out = tmp_path / "ws"
    workshop.run_workshop(DataSpec(source="digits"), out, models=["shallow", "deep"],
                          train={"epochs": 1}, progress=False, log=lines.append)  # fmt: skip
    assert (
        "report so far: not written (ValueError: a figure could not be drawn); training goes "
        "on" in lines
    )
    assert list(json.loads((out / "metrics.json").read_text())["models"]) == ["shallow", "deep"]


@pytest.mark.slow  # trains workshops
def test_the_quick_schedule_centres_a_workshops_relu_codes_and_its_file_says_so(tmp_path, capsys):
    """aelab run's quick schedule trains deep with a centred input (dead units); the file of
    that run trains it again bit for bit through aelab train --schedule quick."""
    out = tmp_path / "ws"
    assert main(["run", "--data", "digits", "--models", "shallow,deep", "--epochs", "1",
                 "--conv-kernels", "default", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    config = json.loads((out / "deep" / "config.json").read_text())["model"]["config"]
    assert config["centre_input"] is True
    shallow = json.loads((out / "shallow" / "config.json").read_text())["model"]["config"]
    assert shallow["centre_input"] is False  # its code reads the image: nothing to revive
    capsys.readouterr()
    assert main(["config", str(out / "deep")]) == 0
    text = capsys.readouterr().out
    assert 'schedule = "quick"' in text and "centre-input" not in text
    (tmp_path / "deep.toml").write_text(text)
    again = tmp_path / "again"
    assert main(["train", "--config", str(tmp_path / "deep.toml"), "--out", str(again),
                 "--quiet"]) == 0  # fmt: skip
    same = (out / "deep" / "model.safetensors").read_bytes()
    assert (again / "model.safetensors").read_bytes() == same
    seed = tmp_path / "seed"
    assert main(["run", "--data", "digits", "--models", "deep", "--schedule", "seed", "--epochs",
                 "1", "--out", str(seed), "--quiet"]) == 0  # fmt: skip
    assert not json.loads((seed / "deep" / "config.json").read_text())["model"]["config"][
        "centre_input"]  # fmt: skip
