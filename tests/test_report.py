"""``aelab run`` end to end, ``aelab report`` rebuilding it, the page in a real browser."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from sklearn.decomposition import PCA

from aelab.cli import main
from aelab.report import verdict
from aelab.runs import DataSpec, prepare_data
from aelab.workshop import WORKSHOP_MODELS, quick_schedule

FIVE = list(WORKSHOP_MODELS)


@pytest.fixture(scope="module")
def workshop(tmp_path_factory):
    """The quick preset on scikit-learn's digits, digits 8 and 9 held out like unseen people."""
    out = tmp_path_factory.mktemp("workshop") / "run"
    code = main(["run", "--data", "digits", "--holdout-people", "2", "--mirror", "--preset",
                 "quick", "--epochs", "3", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    return out


def test_run_writes_every_sub_run_metrics_figures_report(workshop):
    for name in FIVE:
        assert (workshop / name / "model.safetensors").is_file()
        assert (workshop / name / "config.json").is_file()
    m = json.loads((workshop / "metrics.json").read_text())
    assert set(m["data"]) >= {"name", "n_train", "n_heldout", "image_shape", "split"}
    assert m["data"]["name"] == "digits"
    assert m["data"]["image_shape"] == [1, 8, 8]
    assert set(m["models"]) == set(FIVE)
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
    split = prepare_data(DataSpec(source="digits", holdout_people=2, mirror=True))
    assert set(np.unique(split.heldout.labels)) == {8, 9}
    assert not set(np.unique(split.train.labels)) & {8, 9}
    assert m["data"]["n_train"] == len(split.train) and m["data"]["n_heldout"] == len(split.heldout)
    assert "leave-one-out" in m["data"]["split"]["knn"]


EXPECTED_FIGURES = (
    ["learning_curves.png", "weights_shallow.png", "weights_deep.png", "interpolation.png",
     "embeddings_deep.png", "embeddings_conv.png", "denoising_denoising.png",
     "vae_latent_vae.png", "vae_manifold_vae.png"]
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
    assert html.count("beats PCA") + html.count("does not beat PCA") == len(FIVE)


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


def test_pca_baseline_by_hand(workshop):
    """The PCA column equals scikit-learn's PCA computed here on the same split."""
    m = json.loads((workshop / "metrics.json").read_text())
    split = prepare_data(DataSpec(source="digits", holdout_people=2, mirror=True))
    x_tr = split.train.images.reshape(len(split.train), -1)
    x_te = split.heldout.images.reshape(len(split.heldout), -1)
    pca = PCA(n_components=20, random_state=0).fit(x_tr)
    x_hat = np.clip(pca.inverse_transform(pca.transform(x_te)), 0, 1)
    assert m["models"]["deep"]["pca"]["mse"] == pytest.approx(np.mean((x_hat - x_te) ** 2), 1e-5)


def test_verdict_sentence():
    m = {"code_size": 20, "heldout": {"mse": 0.005}, "pca": {"mse": 0.01, "n_components": 20}}
    assert verdict("deep", m) == (
        "deep beats PCA with 20 components on held-out images: MSE 0.00500 vs 0.01000 (50% lower)."
    )
    m["heldout"]["mse"] = 0.015
    assert "does not beat PCA" in verdict("deep", m) and "(50% higher)" in verdict("deep", m)


def test_quick_schedule_bounds():
    assert quick_schedule("conv", 1_000_000)["epochs"] == 8
    assert quick_schedule("conv", 4500)["epochs"] == 13  # mnist: 60,000 images seen
    assert quick_schedule("conv", 720, (1, 64, 64))["epochs"] == 16  # olivetti with mirrors
    assert quick_schedule("shallow", 10)["epochs"] == 300
    assert quick_schedule("denoising", 4500)["optimizer"] == "adam"
    assert quick_schedule("vae", 4500)["optimizer"] == "rmsprop"


def test_run_user_errors(workshop, tmp_path, capsys):
    bad = ["run", "--data", "digits", "--models", "conv,foo", "--out", str(tmp_path / "x")]
    assert main(bad) == 2
    assert "models='conv,foo' is not valid" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["run", "--data", "digits", "--out", str(workshop)]) == 2
    assert "already holds files; pass --overwrite" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no workshop.json" in capsys.readouterr().err


def test_report_in_a_real_browser(workshop):
    """Chromium loads the page with no console errors; every image decoded; every model shown."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required for the browser test (apt install chromium)"
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"],
        )  # fmt: skip
        try:
            for width in (1280, 390):  # a laptop and a phone
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto((workshop / "report.html").as_uri())
                page.wait_for_load_state("load")
                images = page.eval_on_selector_all(
                    "img", "els => els.map(e => [e.complete, e.naturalWidth, e.clientWidth])"
                )
                assert images and all(c and nw > 0 for c, nw, _ in images), images
                assert all(cw <= width for _, _, cw in images)  # nothing wider than the screen
                rows = page.eval_on_selector_all(
                    "#metrics tbody tr", "els => els.map(e => e.dataset.model)"
                )
                assert rows == FIVE
                page.close()
        finally:
            browser.close()
    assert errors == []
