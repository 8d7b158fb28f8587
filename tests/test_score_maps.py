"""``aelab score --maps`` and ``--gallery``: calibrated per-pixel maps on one fixed scale, the rate
they hold on unseen normal images, the gallery page, and hostile arguments as one line. Real
image files, a real run, the real command."""

from __future__ import annotations

import csv
import io
import math
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from aelab import Autoencoder
from aelab.analysis import anomaly
from aelab.analysis.detector import Detector
from aelab.cli import main
from aelab.runs.run import load_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A shallow model, three epochs on scikit-learn's 8x8 digits (180 held-out images)."""
    out = tmp_path_factory.mktemp("maps-run") / "shallow"
    argv = ["train", "shallow", "--data", "digits", "--epochs", "3", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    return out


def _digits(first: int, n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().images[first : first + n] * 255 / 16).round().astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Ten digits the run trained on or held out (normal) and three noise images (unusual)."""
    root = tmp_path_factory.mktemp("to-map")
    for i, im in enumerate(_digits(0, 10)):
        Image.fromarray(im).save(root / f"digit{i}.png")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / f"noise{i}.png")
    return root


def _score(argv, capsys):
    code = main(["score", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def test_every_map_is_on_one_fixed_scale(run, folder, tmp_path, capsys):
    maps, alone = tmp_path / "maps", tmp_path / "alone"
    code, out, err = _score([run, folder, "--maps", maps], capsys)
    assert code == 0 and len(err) == 1, err
    assert "white at p=0.05 (the per-pixel threshold)" in err[0] and f"wrote {maps}" in err[0]
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(out))}
    assert sorted(os.listdir(maps)) == sorted(rows)
    # a normal image scored alone gets the very same map as beside the noise: one scale
    single = tmp_path / "single"
    single.mkdir()
    (single / "digit3.png").write_bytes((folder / "digit3.png").read_bytes())
    assert _score([run, single, "--maps", alone], capsys)[0] == 0
    assert (alone / "digit3.png").read_bytes() == (maps / "digit3.png").read_bytes()
    # the colours are the p-values the library computes, on the scale of the level
    detector = Detector(load_run(run))
    held = load_run(run).data(carve=False).heldout.images
    detector.calibrate(torch.from_numpy(held), pixels=True)
    x = np.stack([np.asarray(Image.open(folder / n), np.float32)[None] / 255 for n in rows])
    p = detector.pixel_p_values(detector.maps(torch.from_numpy(x)))
    from aelab.plots import significance_rgb

    for name, want in zip(rows, significance_rgb(anomaly.significance(p), 0.05)):
        assert (np.asarray(Image.open(maps / name)) == want).all(), name
    # noise is red where digits are blue: more of its pixels past the threshold
    red = {n: np.mean(p[i] <= 0.05) for i, n in enumerate(rows)}
    assert min(red[f"noise{i}.png"] for i in range(3)) > max(red[f"digit{i}.png"]
                                                             for i in range(10))  # fmt: skip


def test_the_per_pixel_rate_holds_on_unseen_normal_images(run):
    """Calibrated on half the run's held-out digits, the share of the other half's pixels
    flagged stays within the conformal rate's sampling spread of floor(fpr (n + 1)) / (n + 1)."""
    images = load_run(run).data(carve=False).heldout.images  # 180 digits never trained on
    order = np.random.default_rng(0).permutation(len(images))
    rates = []
    for half in (order[:90], order[90:]):  # each half calibrates, the other is measured
        other = np.setdiff1d(order, half)
        detector = Detector(load_run(run)).calibrate(torch.from_numpy(images[half]), pixels=True)
        p = detector.pixel_p_values(detector.maps(torch.from_numpy(images[other])))
        rates.append(np.mean(p <= detector.pixel_level(0.05)))
    bound = math.floor(0.05 * 91) / 91  # 4 / 91 = 0.044
    spread = math.sqrt(bound * (1 - bound) / 92)  # one pixel's rate, given its calibration
    assert all(abs(r - bound) < 3 * spread for r in rates), (rates, bound)


def test_the_gallery_shows_the_extremes_with_explanations(
    run, folder, tmp_path, capsys, monkeypatch
):
    odd = tmp_path / "odd"
    odd.mkdir()
    for f in folder.iterdir():
        (odd / f.name).write_bytes(f.read_bytes())
    checkers = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)  # the most unusual
    Image.fromarray(checkers).save(odd / "<img src=x onerror=alert(1)>.png")
    page = tmp_path / "gallery.html"
    code, out, err = _score([run, odd, "--gallery", 2, "--gallery-out", page], capsys)
    assert code == 0 and f"wrote {page}" in err[0], err
    html = page.read_text()
    assert html.count("<figure") == 4 and html.count('src="data:image/png;base64,') == 9
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;.png" in html
    assert html.count("of its excess error in") == 4 and "probability at most 0.05" in html
    rows = sorted(csv.DictReader(io.StringIO(out)), key=lambda r: float(r["score"]))
    unusual = html.split("Most unusual")[1]
    for r in rows[:2]:  # the two lowest scores are the most unusual
        name = r["name"].replace("<", "&lt;").replace(">", "&gt;")
        assert name in unusual
    assert not re.search(r"""(src|href)=["']?https?:""", html)  # works offline
    # the default name, in the current folder; an existing page is kept without --overwrite
    monkeypatch.chdir(tmp_path)
    code, _, err = _score([run, folder, "--gallery", 1], capsys)
    assert code == 2 and "--gallery-out gallery.html is a file that" in err[0]
    assert _score([run, folder, "--gallery", 1, "--overwrite"], capsys)[0] == 0
    assert page.read_text().count("<figure") == 2


def test_hostile_arguments_are_one_line_and_write_nothing(run, folder, tmp_path, capsys):
    empty, full, target = tmp_path / "empty", tmp_path / "full", tmp_path / "target"
    empty.mkdir()
    full.mkdir()
    (full / "mine.txt").write_text("mine")
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    taken = tmp_path / "taken.html"
    taken.write_text("mine")
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(_digits(100, 1)[0]).save(one / "only.png")
    saved = tmp_path / "estimator"
    x = _digits(0, 300).astype(np.float32) / 255
    Autoencoder(model="shallow", epochs=1, random_state=0, device="cpu").fit(x).save(saved)
    cases = [
        ([run, folder, "--gallery", 0], "--gallery 0 is not valid; expected a whole "
         "number from 1 to 100"),
        ([run, folder, "--gallery", 10**12], "--gallery 1000000000000 is not valid"),
        ([run, folder, "--gallery", -3], "--gallery -3 is not valid"),
        ([run, folder, "--maps", link], f"--maps {link} is a symbolic link; expected a new folder"),
        ([run, folder, "--maps", taken], f"--maps {taken} exists and is not an empty folder"),
        ([run, folder, "--maps", full], f"--maps {full} exists and is not an empty folder"),
        ([run, folder, "--gallery", 2, "--gallery-out", taken], "is a file that exists"),
        ([run, folder, "--gallery", 2, "--gallery-out", empty], "is a directory"),
        ([run, folder, "--gallery-out", tmp_path / "g.html"], "needs --gallery N"),
        ([run, folder, "--maps", tmp_path / "m", "--calibrate", one],
         f"1 images of --calibrate {one} are too few for --fpr=0.05"),
        ([run, folder, "--gallery", 2, "--gallery-out", tmp_path / "g.html", "--map-correction",
          "bonferroni"], "180 calibration images are too few for --map-correction bonferroni "
         "over 64 pixels at --fpr 0.05"),
        ([saved, folder, "--maps", tmp_path / "m"], "kept the scores of its calibration "
         "samples, not the images"),
    ]  # fmt: skip
    for argv, words in cases:
        code, out, err = _score(argv, capsys)
        assert code == 2 and len(err) == 1 and words in err[0], (argv, err)
        assert out == ""
    assert os.listdir(target) == [] and os.listdir(empty) == [] and taken.read_text() == "mine"
    assert sorted(os.listdir(full)) == ["mine.txt"]
    assert not (tmp_path / "m").exists() and not (tmp_path / "g.html").exists()
    # the estimator's run with images to calibrate each pixel on: maps as for any run
    assert _score([saved, folder, "--maps", tmp_path / "m", "--calibrate", folder, "--fpr",
                   "0.1"], capsys)[0] == 0  # fmt: skip
    assert len(os.listdir(tmp_path / "m")) == 13
