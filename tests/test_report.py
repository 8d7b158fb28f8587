"""The report of an ``aelab run``: figures, numbers against PCA, ``aelab report`` rebuilding
it, the page in a real browser."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from sklearn.decomposition import PCA

from aelab.apps.report import verdict
from aelab.apps.workshop import WORKSHOP_MODELS
from aelab.cli import main
from aelab.data.prepare import prepare_data
from aelab.runs.run import DataSpec

FIVE = list(WORKSHOP_MODELS)


EXPECTED_FIGURES = (
    ["learning_curves.png", "weights_shallow.png", "weights_deep.png", "interpolation.png",
     "embeddings_deep.png", "embeddings_conv.png", "denoising_denoising.png",
     "vae_latent_vae.png", "vae_manifold_vae.png", "robustness.png", "anomaly_scores.png"]
    + [f"codes_{n}.png" for n in FIVE]
    + [f"activations_{n}.png" for n in FIVE]
    + [f"generated_random_{n}.png" for n in FIVE if n != "vae"]
    + [f"generated_pca_{n}.png" for n in FIVE if n != "vae"]
)  # fmt: skip


def test_every_figure_is_written_and_inline(workshop):
    figures = {p.name for p in (workshop / "figures").iterdir()}
    assert set(EXPECTED_FIGURES) <= figures
    html = (workshop / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(figures)
    assert not re.search(r"""(src|href)=["']?https?:""", html), "the report must work offline"
    for name in FIVE:
        assert f'data-model="{name}"' in html
    verdicts = ("beats PCA", "does not beat PCA", "is level with PCA",
                "reconstructs the held-out images exactly")  # fmt: skip
    assert sum(html.count(v) for v in verdicts) == len(FIVE)
    assert 'id="missing"' not in html  # every model trained


@pytest.mark.slow
def test_report_rebuilds_the_same_report(workshop, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(workshop, copy)
    shutil.rmtree(copy / "figures")
    (copy / "metrics.json").unlink()
    (copy / "report.html").unlink()
    assert main(["report", str(copy)]) == 0
    assert json.loads((copy / "metrics.json").read_text()) == json.loads(
        (workshop / "metrics.json").read_text()
    )
    assert (copy / "report.html").read_text() == (workshop / "report.html").read_text()


def test_the_last_report_measures_only_what_the_partial_pages_left_out(
    workshop, tmp_path, monkeypatch
):
    """A workshop's pages share one memo: the last report encodes no run a partial page measured
    and adds the looks inside and the anomaly maps to their numbers (that it equals a fresh
    ``aelab report``: test_report_rebuilds_the_same_report, on a workshop written this way)."""
    from aelab.analysis import measure
    from aelab.apps.report import build_report

    copy = tmp_path / "copy"
    shutil.copytree(workshop, copy)
    memo, calls = {}, {"run": 0, "more": 0}
    for key in calls:
        real = getattr(measure, f"_measure_{key}")

        def counted(*args, real=real, key=key):
            calls[key] += 1
            return real(*args)

        monkeypatch.setattr(measure, f"_measure_{key}", counted)
    partial = build_report(copy, partial=True, memo=memo)
    assert calls == {"run": len(WORKSHOP_MODELS), "more": 0}
    assert all("inside" not in m for m in partial["models"].values())
    whole = build_report(copy, memo=memo)
    assert calls == {"run": len(WORKSHOP_MODELS), "more": len(WORKSHOP_MODELS)}
    assert all("inside" in m and "maps" in m["anomaly"] for m in whole["models"].values())
    assert json.loads((copy / "metrics.json").read_text()) == json.loads(
        (workshop / "metrics.json").read_text()
    )
    build_report(copy, memo=memo)  # measured whole: nothing more
    assert calls == {"run": len(WORKSHOP_MODELS), "more": len(WORKSHOP_MODELS)}


def test_partial_pages_draw_each_runs_own_pictures_once(workshop, tmp_path, monkeypatch):
    """A page written while a workshop trains redraws the comparisons of every model but not the
    pictures of one run's alone (its codes and reconstructions, its weights): those come from the
    page before, byte for byte what drawing them again gives, and only for the same run."""
    from aelab import plots
    from aelab.apps.report import build_report

    copy, other = tmp_path / "copy", tmp_path / "other"
    shutil.copytree(workshop, copy)
    shutil.copytree(workshop, other)
    draws = []
    for name in ("codes_and_reconstructions", "weight_tiles"):
        real = getattr(plots, name)

        def counted(*args, real=real, name=name, **kwargs):
            draws.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(plots, name, counted)

    def page(folder, memo):
        draws.clear()
        build_report(folder, partial=True, memo=memo)
        files = {p.name: p.read_bytes() for p in (folder / "figures").iterdir()}
        return (folder / "report.html").read_text(), files, list(draws)

    memo = {}
    html, files, drawn = page(copy, memo)
    assert drawn.count("codes_and_reconstructions") >= len(WORKSHOP_MODELS)
    again, again_files, redrawn = page(copy, memo)
    assert redrawn == [] and again == html and again_files == files
    assert page(other, memo)[2] == drawn  # another folder's runs: drawn for themselves


def test_every_figures_text_lies_inside_it_wide_and_narrow(workshop):
    """Titles, labels and legends of every figure of the report, in its wide version and the one
    drawn for a phone's screen, lie inside the figure: none cut off at a side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from aelab.analysis.measure import measure
    from aelab.apps.report_figures import report_figures
    from aelab.runs.open import open_runs

    opened = open_runs(workshop, data=True)
    runs = {name: next(iter(seeds.values())) for name, seeds in opened.groups.items()}
    result, arrays = measure(opened.groups, opened.split)
    figures = report_figures(runs, opened.split, result["models"], arrays, 0,
                             data=result["data"], curve=result["robustness"])  # fmt: skip
    outside = []
    for entry in figures:
        for which in ("figure", "narrow"):
            fig = entry.get(which)
            if fig is None:
                continue
            renderer = FigureCanvasAgg(fig).get_renderer()
            fig.draw(renderer)
            for text in _texts(fig):
                box = text.get_window_extent(renderer)
                if (
                    box.x0 < -1
                    or box.x1 > fig.bbox.x1 + 1
                    or box.y0 < -1
                    or box.y1 > fig.bbox.y1 + 1
                ):
                    outside.append((entry["file"], which, text.get_text()))
    assert outside == []


def _texts(fig):
    """The texts of a figure that tick labels are not: its own and its subfigures' (titles
    included), and each axes' titles, axis labels and legend."""
    found = []
    for f in [fig, *fig.subfigs]:
        found += [*f.texts, *([f._suptitle] if f._suptitle is not None else [])]
    for ax in fig.get_axes():
        found += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        legend = ax.get_legend()
        found += legend.get_texts() if legend is not None else []
    return [t for t in found if t.get_text() and t.get_visible()]


def test_pca_baseline_by_hand(workshop):
    """The PCA column equals scikit-learn's PCA computed here on the same split."""
    m = json.loads((workshop / "metrics.json").read_text())
    split = prepare_data(DataSpec(source="digits", holdout_people=2, normals=0.1, mirror=True))
    x_tr = split.train.images.reshape(len(split.train), -1)
    x_te = split.heldout.images.reshape(len(split.heldout), -1)
    pca = PCA(n_components=20, random_state=0).fit(x_tr)
    x_hat = np.clip(pca.inverse_transform(pca.transform(x_te)), 0, 1)
    assert m["models"]["deep"]["pca"]["mse"] == pytest.approx(np.mean((x_hat - x_te) ** 2), 1e-5)


def test_verdict_sentence():
    m = {"code_size": 20, "heldout": {"mse": 0.005}, "pca": {"mse": 0.01, "n_components": 20},
         "pca_ratio": 0.5}  # fmt: skip
    assert verdict("deep", m) == (
        "deep beats PCA with 20 components on held-out images: MSE 0.00500 vs 0.01000, 50% "
        "lower (one seed: its spread is unknown; --seeds 0,1,2 measures it)."
    )
    m["heldout"]["mse"], m["pca_ratio"] = 0.015, 1.5
    assert "does not beat PCA" in verdict("deep", m) and "50% higher" in verdict("deep", m)


@pytest.mark.slow
def test_report_writes_only_regular_files_inside_its_folder(workshop, tmp_path, capsys):
    copy = tmp_path / "w"
    shutil.copytree(workshop, copy)
    outside = tmp_path / "precious.html"
    outside.write_text("mine")
    (copy / "report.html").unlink()
    (copy / "report.html").symlink_to(outside)
    assert main(["report", str(copy)]) == 0
    assert outside.read_text() == "mine"  # the link was replaced, not written through
    assert not (copy / "report.html").is_symlink() and (copy / "report.html").stat().st_size
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(copy / "figures")
    (copy / "figures").symlink_to(elsewhere)
    capsys.readouterr()
    assert main(["report", str(copy)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "is a symbolic link or a file" in lines[0]
    assert list(elsewhere.iterdir()) == []


def test_model_names_that_leave_the_folder_are_refused(workshop, tmp_path, capsys):
    copy = tmp_path / "w"
    shutil.copytree(workshop, copy)
    record = json.loads((copy / "workshop.json").read_text())
    record["models"] = ["deep", "../../elsewhere/deep"]
    (copy / "workshop.json").write_text(json.dumps(record))
    assert main(["report", str(copy)]) == 2  # the manifest no longer matches the file
    assert "workshop.json: its SHA-256 differs" in capsys.readouterr().err
    (copy / "aelab-run.json").unlink()  # as a workshop of aelab 0.1, with no manifest
    assert main(["report", str(copy)]) == 2
    assert "has no aelab-run.json" in capsys.readouterr().err  # refused unless --legacy
    assert main(["report", str(copy), "--legacy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "model='../../elsewhere/deep' is not valid" in err[-1]


def test_corruption_curve_starts_at_the_clean_scores(workshop):
    """At level 0 the curve is each model's and PCA's held-out PSNR of the table; the input's
    own PSNR falls as the corruption grows; the denoising model's shortfalls are stated."""
    m = json.loads((workshop / "metrics.json").read_text())
    curve = m["robustness"]
    assert set(curve["levels"]) == {"gaussian", "saltpepper", "mask"}
    for kind, levels in curve["levels"].items():
        assert levels[0] == 0 and levels[-1] == 0.5
        noisy = curve["input"][kind]
        assert all(a > b for a, b in itertools.pairwise(noisy[1:])), (kind, noisy)
        for name, entry in m["models"].items():
            assert curve["methods"][name][kind][0] == pytest.approx(entry["heldout"]["psnr"])
            k = entry["pca"]["n_components"]
            assert curve["methods"][f"pca-{k}"][kind][0] == pytest.approx(entry["pca"]["psnr"])
    assert isinstance(m["models"]["denoising"]["denoising"]["shortfalls"], list)
    html = (workshop / "report.html").read_text()
    assert "Robustness to corruption" in html and '<table class="robustness">' in html
    assert "denoising was trained on Gaussian noise, σ = 0.05." in html
    for kind in ("Gaussian noise", "salt and pepper", "masking"):  # a sentence each, not a list
        assert f"denoising under {kind}: " in html


def test_anomaly_section_against_pca(workshop):
    """With unseen images of the training people kept back, every model is scored on telling
    the held-out people apart, beside PCA at the same code size, with the achieved FPR."""
    m = json.loads((workshop / "metrics.json").read_text())
    n = m["data"]["normals"]
    for entry in m["models"].values():
        d = entry["anomaly"]
        for part in (d, d["pca"]):
            assert 0 <= part["auc"] <= 1 and 0 <= part["fpr"] <= 1 and 0 <= part["detected"] <= 1
            assert part["n_calibration"] == n["n_calibration"] and part["n_normal"] == n["n_test"]
            assert part["n_unusual"] == m["data"]["n_heldout"] and part["target_fpr"] == 0.05
    assert '<table id="anomaly">' in (workshop / "report.html").read_text()


@pytest.mark.slow
def test_the_report_of_an_interrupted_workshop_names_the_missing_models(tmp_path, capsys):
    # it reported the finished models, exit 0, and said nothing of the others
    from sklearn.datasets import load_digits

    digits, data = load_digits(), tmp_path / "digits300.npz"
    np.savez(data, images=(digits.images[:300] * 16).astype(np.uint8), labels=digits.target[:300])
    out = tmp_path / "w"
    proc = subprocess.Popen([sys.executable, "-m", "aelab", "run", "--data", str(data),
                             "--models", "shallow,deep,vae", "--epochs", "3", "--out", str(out),
                             "--quiet"], stderr=subprocess.PIPE, text=True)  # fmt: skip
    for line in proc.stderr:  # killed as the second model starts
        if line.startswith("shallow:"):
            os.kill(proc.pid, signal.SIGKILL)
            break
    assert proc.wait(timeout=300) == -signal.SIGKILL
    assert main(["report", str(out)]) == 0
    captured = capsys.readouterr()
    finish = f"aelab run --out {out} --resume"
    note = f"deep, vae: not trained yet, left out of the report; finish them with: {finish}"
    assert captured.err.strip().splitlines() == [note]
    assert json.loads((out / "metrics.json").read_text())["missing"] == ["deep", "vae"]
    html = (out / "report.html").read_text()
    assert 'data-model="shallow"' in html and 'data-model="deep"' not in html
    assert f'<p class="missing" id="missing">{note}</p>' in html
