"""Every number with its spread: seeds through train, run, the report, evaluate and compare; the
statistics checked against hand computations; config files that train a run again bit for bit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from aelab.analysis.spread import against, aggregate, summary, welch
from aelab.apps.report import render_html, verdict
from aelab.cli import main

SMALL = ["--data", "digits", "--quiet", "--device", "cpu", "--epochs", "2"]


# -- the statistics, by hand ----------------------------------------------------------------------


def test_summary_is_the_mean_the_sample_std_and_students_interval():
    s = summary([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == 1.0 and s["n"] == 3
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2)
    assert s["ci95"] == pytest.approx([2 - half, 2 + half])
    one = summary([5.0])
    assert one["mean"] == 5.0 and one["std"] is None and one["ci95"] is None


def test_aggregate_averages_what_the_seeds_disagree_on_and_keeps_the_rest():
    a = {"code_size": 8, "heldout": {"mse": 0.1, "knn": None}, "pca": {"mse": 0.2}, "name": "x"}
    b = {"code_size": 8, "heldout": {"mse": 0.3, "knn": None}, "pca": {"mse": 0.2}, "name": "x"}
    merged, spread = aggregate([a, b])
    assert merged["heldout"]["mse"] == pytest.approx(0.2) and merged["pca"]["mse"] == 0.2
    assert set(spread) == {"heldout.mse"} and spread["heldout.mse"]["values"] == [0.1, 0.3]
    assert merged["code_size"] == 8 and merged["heldout"]["knn"] is None


def test_welch_against_a_hand_computation():
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 7.0]
    t = welch(a, b)
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 3
    assert t["t"] == pytest.approx((2 - 16 / 3) / math.sqrt(va + vb))
    assert t["df"] == pytest.approx((va + vb) ** 2 / (va**2 / 2 + vb**2 / 2))
    assert 0.01 < t["p"] < 0.06
    with pytest.raises(ValueError, match="at least two seeds"):
        welch([1.0], [2.0, 3.0])


def test_an_interval_that_straddles_one_gives_no_verdict(tmp_path):
    """A model whose error's ratio to PCA's straddles 1 over its seeds: the page never says it
    beats PCA, and says it is not distinguishable."""
    ratios = [0.94, 1.02, 0.99]
    m = {
        "code_size": 8, "epochs": 2, "train_seconds": 1.0, "dead_units": 0, "seeds": [0, 1, 2],
        "heldout": {"mse": 0.0099, "psnr": 20.0, "ssim": 0.5, "knn_accuracy": None},
        "pca": {"n_components": 8, "mse": 0.01, "psnr": 20.0, "ssim": 0.5, "knn_accuracy": None},
        "pca_ratio": float(np.mean(ratios)), "spread": {"pca_ratio": summary(ratios)},
    }  # fmt: skip
    assert against(m["pca_ratio"], tuple(m["spread"]["pca_ratio"]["ci95"]), 1.0) == 0
    assert "not distinguishable over 3 seeds" in verdict("deep", m)
    result = {"aelab": "x", "data": {"name": "d", "n_train": 1, "n_heldout": 1,
              "image_shape": [1, 8, 8], "split": {"knn": "x"}}, "models": {"deep": m},
              "robustness": None, "schedule": "quick"}  # fmt: skip
    page = render_html(result, [])
    assert "beats PCA" not in page and "not distinguishable" in page
    assert 'class="good"' not in page  # nothing marked better than PCA
    beats = {**m, "spread": {"pca_ratio": summary([0.90, 0.91, 0.92])}, "pca_ratio": 0.91}
    assert verdict("deep", beats).startswith("deep beats PCA")


def test_one_seed_says_its_spread_is_unknown():
    m = {"heldout": {"mse": 0.00995}, "pca": {"mse": 0.01, "n_components": 8}, "pca_ratio": 0.995}
    text = verdict("deep", m)
    assert "one seed: its spread is unknown" in text and "0.5% lower" in text  # never "0%"


# -- seeds through the commands -------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """aelab run on digits with two models and three training seeds."""
    out = tmp_path_factory.mktemp("seeded") / "ws"
    assert main(["run", *SMALL, "--models", "shallow,deep", "--seeds", "0,1,2",
                 "--out", str(out)]) == 0  # fmt: skip
    return out


def test_a_workshop_of_seeds_reports_every_number_with_its_spread(seeded):
    names = sorted(p.name for p in seeded.iterdir() if (p / "aelab-run.json").is_file())
    assert names == [f"{m}-seed{s}" for m in ("deep", "shallow") for s in (0, 1, 2)]
    metrics = json.loads((seeded / "metrics.json").read_text())
    for name, m in metrics["models"].items():
        assert m["seeds"] == [0, 1, 2], name
        for path in ("heldout.mse", "heldout.psnr", "heldout.ssim", "final_loss"):
            s = m["spread"][path]
            assert s["n"] == 3 and s["ci95"][0] < s["mean"] < s["ci95"][1], (name, path)
            assert s["mean"] == pytest.approx(np.mean(s["values"]))
        assert "pca.mse" not in m["spread"]  # PCA's numbers, deterministic, once
    deep = metrics["models"]["deep"]
    assert deep["spread"]["pca_ratio"]["n"] == 3  # the ratio's interval from the model's seeds
    assert "deep" in metrics["robustness"]["spread"]
    page = (seeded / "report.html").read_text()
    assert "±" in page and "over its seeds" in page and "first seed (0) of 3" in page


def test_evaluate_and_compare_read_groups_of_seeds(seeded, tmp_path, capsys):
    assert main(["evaluate", str(seeded)]) == 0
    out = capsys.readouterr().out
    assert "mean ± std over seeds" in out and " ± " in out
    assert main(["compare", str(seeded), "--out", str(tmp_path / "c.json")]) == 0
    tests = json.loads((tmp_path / "c.json").read_text())["tests"]
    mse = next(t for t in tests if t["metric"] == "heldout.mse")
    assert mse["p"] < 0.05 and mse["sentence"].startswith("deep's held-out MSE is lower than")


@pytest.mark.slow
def test_two_groups_of_one_recipe_show_no_difference(tmp_path, capsys):
    for group, seeds in (("a", "0,1,2"), ("b", "3,4,5")):
        assert (
            main(["train", "deep", *SMALL, "--seeds", seeds, "--out", str(tmp_path / group)]) == 0
        )
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "held-out MSE: no difference shown between a:deep and b:deep" in out


def test_compare_refuses_runs_of_other_held_out_images(seeded, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["train", "deep", *SMALL, "--seed", "7", "--out", str(other)]) == 0
    assert main(["compare", str(seeded), str(other)]) == 2
    assert "holds out other images" in capsys.readouterr().err


def test_bad_seeds_are_one_line(tmp_path, capsys):
    for seeds in ("0,0", "-1", "a"):
        try:
            code = main(["run", *SMALL, "--seeds", seeds, "--out", str(tmp_path / "x")])
        except SystemExit as e:  # argparse's own refusal of what is no list of integers
            code = e.code
        assert code == 2 and "seeds" in capsys.readouterr().err
        assert not (tmp_path / "x").exists()


# -- config files ---------------------------------------------------------------------------------


def test_the_file_aelab_config_writes_trains_the_run_again_bit_for_bit(tmp_path, capsys):
    first, again = tmp_path / "first", tmp_path / "again"
    assert main(["train", "deep", *SMALL, "--latent-dim", "8", "--hidden", "32", "--lr", "0.002",
                 "--mirror", "--conv-kernels", "default", "--out", str(first)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["config", str(first)]) == 0
    text = capsys.readouterr().out
    assert "latent-dim = 8" in text and "mirror = true" in text
    (tmp_path / "run.toml").write_text(text)
    assert main(["train", "--config", str(tmp_path / "run.toml"), "--out", str(again)]) == 0
    assert (first / "model.safetensors").read_bytes() == (again / "model.safetensors").read_bytes()
    # a flag overrides the file
    third = tmp_path / "third"
    assert main(["train", "--config", str(tmp_path / "run.toml"), "--epochs", "1",
                 "--out", str(third), "--quiet"]) == 0  # fmt: skip
    assert len(json.loads((third / "history.json").read_text())) == 1


def test_a_workshop_of_seeds_writes_its_file_too(seeded, tmp_path, capsys):
    assert main(["config", str(seeded)]) == 0
    text = capsys.readouterr().out
    assert 'models = ["shallow", "deep"]' in text and "seeds = [0, 1, 2]" in text


@pytest.mark.parametrize(
    "content, message",
    [
        ('model = "deep"\nspeed = 3\n', "speed is not a setting of aelab train"),
        ('model = "deep"\nepochs = "three"\n', "epochs='three' is not valid"),
        ('model = "deep"\ndata = "digits"\nepochs = 0\n', "--epochs 0 is not valid"),
        ('model = "deep"\nmirror = "yes"\n', "mirror='yes' is not valid; expected true or false"),
        ("model = 3\n", "model=3 is not valid"),
        ("model = \n", "not valid TOML"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_key(content, message, tmp_path, capsys):
    (tmp_path / "bad.toml").write_text(content)
    code = main(["train", "--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1], err
    assert not (tmp_path / "x").exists()


# -- kills ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_workshop_of_seeds_killed_midway_keeps_the_finished_seeds(tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "ws"
    args = [sys.executable, "-m", "aelab", "run", "--data", "digits", "--models", "deep",
            "--seeds", "0,1,2", "--epochs", "300", "--device", "cpu",
            "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen([*args, "--quiet"], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if line.startswith("deep-seed0:"):  # the first seed finished: kill during the second
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    finished = (out / "deep-seed0" / "model.safetensors").read_bytes()
    assert main(["run", "--out", str(out), "--resume", "--quiet"]) == 0
    assert (out / "deep-seed0" / "model.safetensors").read_bytes() == finished
    assert all((out / f"deep-seed{s}" / "model.safetensors").is_file() for s in (1, 2))
    assert json.loads((out / "metrics.json").read_text())["models"]["deep"]["seeds"] == [0, 1, 2]


def test_within_spread_compares_the_excess_of_the_means_with_the_references_own_spread():
    from aelab.analysis.spread import within_spread

    reference = [1.0, 2.0, 3.0]  # mean 2, sample standard deviation 1
    at_edge = within_spread([2.5, 3.0, 3.5], reference)  # mean 3: exactly one std worse
    assert at_edge["excess"] == pytest.approx(1.0) and at_edge["std"] == pytest.approx(1.0)
    assert at_edge["within"] and at_edge["ratio"] == pytest.approx(1.5)
    assert not within_spread([3.0, 3.0, 3.1], reference)["within"]  # 1.033 > 1
    assert within_spread([0.0, 0.0, 0.0], reference)["within"]  # better never counts against
    with pytest.raises(ValueError, match="at least two seeds"):
        within_spread([1.0], reference)
