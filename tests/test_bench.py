"""``aelab bench``: the FLOP count it divides by, its JSON, its comparisons and its errors.

Speed itself is never asserted here (that is what the benchmark is for); these check that what it
reports is computed right.
"""

from __future__ import annotations

import json
import os
import time

import pytest
import torch

from aelab.bench import (
    busy_loops,
    compare,
    conv_layers,
    keras_seed_total,
    main,
    matmul_peak,
    merge_keras,
    step_flops,
)
from aelab.cli import main as cli_main
from aelab.models import build_model


def test_step_flops_match_the_layers_arithmetic():
    # shallow: 4096 -> 100 -> 4096. Forward 2*(4096*100)*2 per image; backward computes weight
    # gradients of both layers but an input gradient only for the second (the image needs none).
    model = build_model("shallow", (1, 64, 64))
    x = torch.rand(8, 1, 64, 64)
    mac = 4096 * 100
    forward, backward = 2 * (2 * mac), 2 * (mac + 2 * mac)
    assert step_flops(model, x) == 8 * (forward + backward)
    assert all(p.grad is None for p in model.parameters())


def test_conv_layers_cover_the_models_convolutions():
    """Every convolution of the conv model, in each backend; their FLOPs are the model's step
    FLOPs but for its two small dense layers."""
    result = conv_layers("conv", batch=2, device="cpu", repeats=1)
    backends = list(result["step_ms_per_backend"])
    assert backends == [
        "onednn, channels-last",
        "onednn, nchw",
        "native, channels-last",
        "native, nchw",
    ]
    assert len(result["rows"]) == 7 * len(backends)  # 3 convolutions, 4 transposed
    first = [r for r in result["rows"] if r["backend"] == backends[0]]
    assert [r["input_shape"][1:] for r in first][:3] == [[1, 64, 64], [32, 31, 31], [64, 14, 14]]
    assert [r["needs_input_grad"] for r in first] == [False] + [True] * 6
    assert all(r["forward_ms"] > 0 and r["backward_weight_ms"] > 0 for r in result["rows"])
    # forward + weight gradient for every layer, input gradient for all but the first
    step = sum(r["forward_gflop"] * (2 + r["needs_input_grad"]) for r in first) * 1e9
    model = build_model("conv", (1, 64, 64))
    total = step_flops(model, torch.rand(2, 1, 64, 64))
    assert 0.98 * total < step <= total
    assert result["step_ms_best_per_layer"] <= min(result["step_ms_per_backend"].values())
    channels_last = [v for k, v in result["step_ms_per_backend"].items() if "channels-last" in k]
    assert result["step_ms_best_per_pass_channels_last"] <= min(channels_last)


@pytest.mark.slow
def test_matmul_peak_is_measured():
    peak = matmul_peak("fp32", seconds=0.05)
    assert peak["precision"] == "fp32" and peak["flops_per_s"] > 1e8 and peak["n"] >= 256


@pytest.mark.slow
def test_models_section_writes_json(olivetti_mat, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["--sections", "models", "--models", "shallow", "--epochs-scale", "0.005",
                 "--olivetti-mat", str(olivetti_mat), "--out", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["machine"]["cores"] >= 1 and result["machine"]["torch"] == torch.__version__
    assert isinstance(result["machine"]["cpu_flags"], list)  # e.g. avx2, avx512_bf16
    row = result["models"]["shallow"]
    assert row["n_train"] == 720 and row["epochs"] == 2 and row["batch_size"] == 80
    assert row["conv_kernels"] == {} and row["tuning_seconds"] == 0.0  # a dense model
    assert row["flops_per_image"] == 2 * (2 * 409600) + 2 * (3 * 409600)
    assert 0 < row["mfu"] < 1 and row["images_per_s"] == pytest.approx(
        720 / row["seconds_per_epoch"]
    )
    assert row["precision_asked"] == "auto" and row["precision"] in ("fp32", "bf16")
    peak = result["peak"][row["precision"]]["flops_per_s"]  # against the precision it ran in
    assert result["peak_end"]["fp32"]["flops_per_s"] > 0  # the drift during the run
    assert row["mfu"] == pytest.approx(row["flops_per_image"] * row["images_per_s"] / peak)
    # several precisions and seeds: each trained with each, the first one's row kept, the mean
    # loss against fp32's
    both = tmp_path / "both.json"
    code = main(["--sections", "models", "--models", "shallow", "--epochs-scale", "0.005",
                 "--precision", "fp32,bf16", "--seeds", "0,1", "--olivetti-mat",
                 str(olivetti_mat), "--out", str(both)])  # fmt: skip
    assert code == 0
    result = json.loads(both.read_text())
    check = result["precision_check"]["shallow"]
    assert result["models"]["shallow"]["precision"] == "fp32"
    assert check["seeds"] == [0, 1]
    fp32, bf16 = check["fp32"], check["bf16"]
    assert fp32["final_loss"] == fp32["final_losses"][0]  # the first seed's, as with one
    assert len(set(fp32["final_losses"])) == 2  # another seed, another run
    assert check["bf16_loss_ratio"] == pytest.approx(
        bf16["mean_final_loss"] / fp32["mean_final_loss"]
    )
    assert fp32["mean_final_loss"] == pytest.approx(sum(fp32["final_losses"]) / 2)
    assert check["bf16_loss_ratios"] == pytest.approx(
        [b / f for b, f in zip(bf16["final_losses"], fp32["final_losses"], strict=True)]
    )
    assert bf16["final_losses"] != fp32["final_losses"]  # really another precision
    # never overwrites an earlier result unless asked
    assert main(["--sections", "models", "--out", str(out)]) == 2
    assert "--out=" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sections", "models,speed"], "--sections='models,speed' is not valid; allowed:"),
        (["--models", "pca"], "--models='pca' is not valid; allowed: shallow"),
        (["--seeds", "0,0"], "--seeds='0,0' is not valid; expected distinct integers >= 0"),
        (["--seeds", "x"], "--seeds='x' is not valid; expected distinct integers >= 0"),
        (["--epochs-scale", "0"], "--epochs-scale=0.0 is not valid; expected > 0"),
        (["--sections", "keras"], "pass --keras-python and --keras-script"),
        (["--scaling-sizes", "1k"], "--scaling-sizes='1k' is not valid"),
        (["--precision", "fp8"], "precision='fp8' is not valid; allowed: auto, fp32, bf16"),
    ],
)
def test_bad_arguments_exit_2_in_one_line(args, message, tmp_path, capsys):
    assert cli_main(["bench", *args, "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "b.json").exists()


@pytest.mark.slow
def test_scaling_streams_and_holds_in_memory(tmp_path):
    out = tmp_path / "scaling.json"
    code = main(["--sections", "scaling", "--scaling-sizes", "40,80", "--workers", "0",
                 "--workdir", str(tmp_path / "work"), "--out", str(out)])  # fmt: skip
    assert code == 0
    rows = json.loads(out.read_text())["scaling"]["rows"]
    assert [(r["mode"], r["n"]) for r in rows] == [
        ("memory", 40), ("memory", 80), ("stream", 40), ("stream", 80),
        ("cached", 40), ("cached", 80),  # no "cached-inline" without workers: the same
    ]  # fmt: skip
    cached = [r for r in rows if r["mode"] == "cached"]
    assert all(r["cached_items"] == r["n"] and r["fill_epoch_seconds"] > 0 for r in cached)
    assert all(r["seconds_per_epoch"] > 0 and r["peak_rss_mib"] > 0 for r in rows)
    assert len(list((tmp_path / "work" / "images-80").glob("*.png"))) == 80


def test_compare_with_keras():
    ours = {"conv": {"epochs": 4, "seconds_per_epoch": 2.0, "final_loss": 0.0102}}
    keras = {"epochs_scale": 0.02, "models": {
        "conv": {"epochs": 4, "seconds_per_epoch": 5.0, "final_loss": 0.0100,
                 "first_epoch_seconds": 6.0, "fit_seconds": 21.0}}}  # fmt: skip
    row = compare(ours, keras)["conv"]
    assert row["speedup"] == pytest.approx(2.5) and row["loss_ratio"] == pytest.approx(1.02)
    # the full schedule (200 epochs) estimated from the first and the median epoch
    assert keras_seed_total(keras) == pytest.approx(6.0 + 5.0 * 199)
    keras["epochs_scale"] = 1
    assert keras_seed_total(keras) == pytest.approx(21.0)


def test_keras_runs_of_one_model_each_merge_into_one_result():
    def keras_run(name, seconds):
        row = {"epochs": 2, "seconds_per_epoch": seconds, "final_loss": 0.5}
        return {"keras": "3", "epochs_scale": 0.05, "models": {name: row}, "wall_seconds": 10.0}

    merged = merge_keras([keras_run("shallow", 0.2), keras_run("conv", 4.0)])
    assert list(merged["models"]) == ["shallow", "conv"] and merged["wall_seconds"] == 20.0
    assert merged["models"]["conv"]["seconds_per_epoch"] == 4.0 and merged["keras"] == "3"


def test_busy_loops_keep_cores_busy_and_are_ended():
    """The contention section's load: each a real process burning CPU, reaped on leaving."""
    with busy_loops(2) as pids:
        assert len(pids) == 2
        time.sleep(0.5)
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            assert int(fields[11]) + int(fields[12]) > 0  # utime + stime: it has run
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.slow
def test_contention_section_writes_json(tmp_path, capsys):
    """aelab alone (no Keras given, and said so), passive and spinning waits, the thread count
    of each epoch, whether the losses agree; the machine with its load average."""
    out = tmp_path / "bench.json"
    code = main(["--sections", "contention", "--models", "shallow", "--busy", "0,1",
                 "--epochs-scale", "0.005", "--out", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert len(result["machine"]["load_average"]) == 3 and "cpu_flags" in result["machine"]
    section = result["contention"]
    assert section["busy_loops"] == [0, 1] and section["keras"] is False
    assert "Keras port was not run" in section["note"]
    for n in ("0", "1"):
        row = section["models"]["shallow"][n]
        assert row["epochs"] == 2 and len(row["load_average"]) == 3 and "keras" not in row
        for variant in ("aelab", "aelab_spinning"):
            assert row[variant]["seconds_per_epoch"] > 0 and row[variant]["cpu_seconds"] > 0
            threads = row[variant]["threads"]
            assert len(threads) == 2 and all(isinstance(t, int) and t >= 1 for t in threads)
        assert row["same_losses"] == (row["aelab"]["losses"] == row["aelab_spinning"]["losses"])
    assert main(["--sections", "contention", "--busy", "0,x", "--out", str(out)]) == 2
    assert "--busy='0,x' is not valid" in capsys.readouterr().err
