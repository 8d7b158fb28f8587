"""The report's sentences and captions checked against the runs they describe: every number a
sentence rests on recomputed from the models, each sentence said exactly where its condition holds,
a VAE collapsed by hand reported as such, and captions in the words of the run's data."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
import torch

from aelab.analysis import interpret
from aelab.analysis.measure import _corrupt, measure
from aelab.analysis.metrics import dead_units, psnr, variance_ratio
from aelab.apps.report_figures import _activations
from aelab.cli import main
from aelab.runs.open import open_runs
from aelab.runs.run import load_run


@pytest.fixture(scope="module")
def opened(workshop):
    return open_runs(workshop, data=True)


def _page(folder) -> str:
    """The page's text: tags (the code marks around flags) removed, entities read."""
    return html.unescape(re.sub(r"<[^>]+>", "", (folder / "report.html").read_text()))


def test_the_sentences_are_true_of_the_workshop(workshop, opened):
    """The digits workshop of three epochs a model: dead units, reconstructions close to one
    image and a denoiser worse than its input are what such short training gives; each sentence
    appears exactly where the models, measured again here, show it."""
    metrics = json.loads((workshop / "metrics.json").read_text())
    page = _page(workshop)
    split = opened.split
    x_te = split.heldout.images
    said = []
    for name, seeds in opened.groups.items():
        run, m = next(iter(seeds.values())), metrics["models"][name]
        notes = interpret.model_notes(name, m, data=metrics["data"], curve=metrics["robustness"])
        for note in notes:
            assert note in page, note
        said += notes
        dead = int(dead_units(run.encode(split.train.images)).sum())
        assert m["dead_units"] == dead
        spoken = any(f"of {name}'s" in n and "are dead" in n for n in notes)
        assert spoken == (not run.model.variational and dead >= 0.1 * m["code_size"])
        ratio = variance_ratio(x_te, run.reconstruct(x_te))
        assert m["heldout"]["variance_ratio"] == pytest.approx(ratio, rel=1e-5)
        assert any("nearly all the same image" in n for n in notes) == (ratio < 0.1)
        if run.model.variational:
            active = m["family"]["active_units"]
            assert any("posterior collapse" in n for n in notes) == (active < m["code_size"])
        if "denoising" in m:
            d = m["denoising"]
            noisy = _corrupt(x_te, d["noise"], 0)  # the report's draw (seed 0)
            assert d["noisy_psnr"] == pytest.approx(psnr(x_te, np.clip(noisy, 0, 1)))
            assert d["denoised_psnr"] == pytest.approx(psnr(x_te, run.reconstruct(noisy)), 1e-5)
            worse = d["denoised_psnr"] < d["noisy_psnr"]
            assert any(n.startswith("At the noise it was trained on") for n in notes) == worse
    assert said, "three epochs a model leave something to say"
    assert "0.0%" not in page and "0% lower" not in page


def test_the_captions_name_this_runs_data_and_what_was_held_out(workshop):
    """On digits the page said "faces from random codes" and "these people were never trained
    on"; a caption title read "denoising: denoising."."""
    page = _page(workshop)
    assert "The held-out digits are of 2 classes never trained on: 8 and 9." in page
    assert "digits from random codes" in page and "digits from a PCA of the codes" in page
    for wrong in ("faces", "people", "These people", "denoising: denoising."):
        assert wrong not in page, wrong
    assert "denoising: noisy, denoised and clean digits" in page


def test_a_collapsed_vae_is_reported_by_kl_not_by_range(workshop, opened):
    """Olivetti's VAE used one unit of two: the other's posterior mean barely moved (maximum
    0.05), so the range rule counted no dead unit and the chart said "0 of 2 units dead". Here
    one unit is collapsed by hand: its mean scaled to almost nothing, its variance the prior's."""
    run = load_run(workshop / "vae")
    head = run.model.encoder
    with torch.no_grad():
        head.mu.weight[1] *= 1e-3
        head.mu.bias[1] = 0.0
        head.logvar.weight[1] = 0.0
        head.logvar.bias[1] = 0.0
    result, arrays = measure({"vae": run}, opened.split, robustness=False)
    m = result["models"]["vae"]
    assert m["dead_units"] == 0  # the unit still moves, so the range rule misses it
    assert m["family"]["active_units"] == 1
    assert arrays["vae"]["kl_units"][1] < interpret.ACTIVE_KL < arrays["vae"]["kl_units"][0]
    notes = interpret.model_notes("vae", m, data=result["data"])
    assert any(n.startswith("vae uses 1 of its 2 code units") for n in notes)
    figures = []
    _activations(lambda *args, **kw: figures.append((args, kw)), "vae", run, arrays["vae"], m)
    ((file, title, _, draw), kw) = figures[0]
    assert file == "activations_vae.png" and "information per code unit" in title
    assert draw(False).axes[0].get_title() == "1 of 2 units inactive (red, ×)"
    assert kw["notes"] == [interpret.collapse_note("vae", m)]


@pytest.mark.slow
def test_a_random_share_held_out_is_called_so(tmp_path):
    """A random 10% of the images held out, their classes also trained on: the page says so
    (it said "these people were never trained on" of a face folder split this way)."""
    out = tmp_path / "w"
    assert main(["run", "--data", "digits", "--models", "shallow,deep", "--epochs", "2",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["kind"] == "digits" and metrics["data"]["heldout"] == "images"
    page = _page(out)
    assert (
        "The held-out digits are a random 10% of the images, never trained on; the same digits "
        "appear in training." in page
    )
    assert "never trained on: " not in page and "people" not in page
    labels = np.unique(np.concatenate([open_runs(out, data=True).split.train.labels]))
    assert len(labels) == 10  # every class is in training, as the sentence says


def test_no_mark_for_a_difference_the_page_cannot_show():
    """Never "0% lower" in green: with one seed, an error within 1% of PCA's and a ROC-AUC
    within 0.01 of PCA's are level, marked neither better nor worse."""
    from aelab.apps.report import render_html

    m = {
        "code_size": 8, "epochs": 2, "train_seconds": 1.0, "dead_units": 0, "seeds": [0],
        "spread": {},
        "heldout": {"mse": 0.009996, "psnr": 20.0, "ssim": 0.5, "knn_accuracy": None},
        "pca": {"n_components": 8, "mse": 0.01, "psnr": 20.0, "ssim": 0.5, "knn_accuracy": None},
        "pca_ratio": 0.9996,
        "anomaly": {"auc": 0.8514, "fpr": 0.05, "detected": 0.5, "target_fpr": 0.05,
                    "pca": {"auc": 0.8510, "fpr": 0.05, "detected": 0.5}},
    }  # fmt: skip
    data = {"name": "d", "kind": "faces", "heldout": "people", "n_train": 1, "n_heldout": 1,
            "image_shape": [1, 8, 8], "split": {"knn": "x", "holdout_people": 1},
            "normals": {"n_calibration": 1, "n_test": 1}}  # fmt: skip
    result = {"aelab": "x", "data": data, "models": {"deep": m}, "robustness": None,
              "schedule": "quick"}  # fmt: skip
    page = render_html(result, [])
    assert 'class="good"' not in page and 'class="bad"' not in page
    assert "deep is level with PCA with 8 components" in page and "0.0%" not in page
    better = {**m, "anomaly": {**m["anomaly"], "auc": 0.90}, "pca_ratio": 0.9, "heldout":
              {**m["heldout"], "mse": 0.009}}  # fmt: skip
    page = render_html({**result, "models": {"deep": better}}, [])
    assert page.count('class="good"') == 3  # MSE, its ratio and the AUC
