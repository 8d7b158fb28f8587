"""``aelab score`` on hostile folders: file names that are not UTF-8 or that a spreadsheet would
run as formulas, symbolic links, FIFOs and sockets, calibrations too small for the rate; error
maps named after their files. Real files in a tmp folder, through the real command."""

from __future__ import annotations

import csv
import io
import math
import os
import socket
import warnings

import numpy as np
import pytest
from PIL import Image

from aelab import Autoencoder
from aelab.analysis import anomaly
from aelab.analysis.detector import Detector, fewest_calibration
from aelab.cli import main
from aelab.runs.run import load_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A shallow model, one epoch on scikit-learn's 8x8 digits (180 held-out images)."""
    out = tmp_path_factory.mktemp("score-run") / "shallow"
    argv = ["train", "shallow", "--data", "digits", "--epochs", "1", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    return out


def _digits(n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().images[:n] * 255 / 16).round().astype(np.uint8)  # (n, 8, 8)


def _write(folder, names, fmt: str = "PNG") -> None:
    """An 8x8 digit under each name (str or bytes: a name need not be UTF-8)."""
    os.makedirs(folder, exist_ok=True)
    for name, im in zip(names, _digits(len(names))):
        path = os.path.join(os.fsencode(folder), os.fsencode(name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            Image.fromarray(im).save(f, format=fmt)


def _not_utf8(folder, name: bytes) -> None:
    try:
        _write(folder, [name])
    except OSError:  # a file system that takes UTF-8 names only (macOS's APFS)
        pytest.skip("this file system refuses names that are not UTF-8")


def _score(argv, capsys):
    """Exit code, the CSV's rows (stdout, or --out) and stderr's lines."""
    code = main(["score", *map(str, argv)])
    captured = capsys.readouterr()
    text = captured.out
    if "--out" in argv and code == 0:
        text = open(argv[argv.index("--out") + 1], encoding="utf-8", newline="").read()
    rows = list(csv.DictReader(io.StringIO(text, newline=""))) if code == 0 else []
    return code, rows, captured.err.strip().splitlines()


def test_a_name_that_is_not_utf8_is_scored_and_written_escaped(run, tmp_path, capsys):
    folder = tmp_path / "photos"
    _write(folder, ["a.png", "b.png"])
    _not_utf8(folder, b"caf\xe9.png")  # Latin-1: the byte 0xe9 alone is not UTF-8
    for out in ([], ["--out", tmp_path / "scores.csv"]):
        code, rows, err = _score([run, folder, *out], capsys)
        assert code == 0, err
        assert [r["name"] for r in rows] == ["a.png", "b.png", "caf\\xe9.png"]
        assert all(float(r["score"]) <= 0 for r in rows)
        assert len(err) == 1 and err[0].startswith("3 images") and "Traceback" not in err[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_links_fifos_and_other_files_are_named_in_the_summary(run, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "photos"
    _write(folder, ["a.png", "b.png"])
    _write(tmp_path, ["secret.png"])
    (folder / "inside.png").symlink_to("a.png")
    (folder / "outside.png").symlink_to(tmp_path / "secret.png")
    (folder / "gone.png").symlink_to("nowhere.png")
    os.mkfifo(folder / "pipe.png")  # opening it would block forever
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    _not_utf8(folder, b"\xff\nbroken.png")  # named on the summary line, which stays one line
    os.truncate(os.path.join(os.fsencode(folder), b"\xff\nbroken.png"), 20)
    monkeypatch.chdir(folder)  # a socket's path is short; the folder's might not be
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("sock.png")
        code, rows, err = _score([run, folder], capsys)
        # a calibration folder's are named too
        cal = _score([run, folder, "--calibrate", folder, "--fpr", "0.5"], capsys)
    assert code == 0, err
    assert [r["name"] for r in rows] == ["a.png", "b.png"]
    assert len(err) == 1, err
    for part in [
        "2 images, ",
        "2 unreadable images (cannot be decoded): broken.png, \\xff\\nbroken.png",
        "3 symbolic links (not followed): gone.png, inside.png, outside.png",
        "1 FIFO (not a regular file): pipe.png",
        "1 socket (not a regular file): sock.png",
        "1 non-image file (not an image): notes.txt",
    ]:
        assert part in err[0], (part, err[0])
    assert cal[0] == 0 and len(cal[2]) == 1, cal[2]
    assert "skipped in calibrate: 2 unreadable images" in cal[2][0]
    assert cal[2][0].count("1 FIFO (not a regular file): pipe.png") == 2


def test_too_few_calibration_images_are_refused_in_one_line(run, tmp_path, capsys):
    few = tmp_path / "few"
    _write(few, [f"{i}.png" for i in range(5)])
    code, _, err = _score([run, few, "--calibrate", few], capsys)
    assert code == 2 and len(err) == 1, err
    assert f"5 images of --calibrate {few} are too few for --fpr=0.05" in err[0]
    assert "needs at least 19" in err[0] and "raise --fpr to 0.167 or more" in err[0]
    # the rate it names is enough, and one below it is not
    assert _score([run, few, "--calibrate", few, "--fpr", "0.167"], capsys)[0] == 0
    assert _score([run, few, "--calibrate", few, "--fpr", "0.16"], capsys)[0] == 2
    # the run's own 180 held-out images, for a rate that needs 999
    code, _, err = _score([run, few, "--fpr", "0.001"], capsys)
    assert code == 2 and len(err) == 1, err
    assert "180 held-out images of run=" in err[0] and "needs at least 999" in err[0]


def test_a_detector_refuses_a_threshold_its_calibration_cannot_set(run):
    detector = Detector(load_run(run), calibration=np.linspace(-1, 0, 5))
    words = r"^5 calibration scores are too few for fpr=0\.05: that rate needs at least 19 "
    with pytest.raises(ValueError, match=words + r".* or raise fpr to 0\.167 or more$"):
        detector.threshold(0.05)
    assert detector.threshold(0.167) == -1.0
    for fpr in (0.5, 0.3, 1 / 3, 0.1, 0.07, 0.05, 0.01, 0.001):
        n = fewest_calibration(fpr)  # threshold_at's own rule: n scores set one, n - 1 do not
        assert math.isfinite(anomaly.threshold_at(np.zeros(n), fpr)), fpr
        assert n == 1 or anomaly.threshold_at(np.zeros(n - 1), fpr) == -math.inf, fpr


def test_the_estimators_minus_inf_threshold_comes_with_a_warning():
    rng = np.random.default_rng(0)
    normal = np.clip(rng.standard_normal((100, 2)) @ rng.standard_normal((2, 16)) * 0.1 + 0.5,
                     0, 1)  # fmt: skip
    ae = Autoencoder(model="deep", hidden=(8,), latent_dim=2, epochs=2, random_state=0,
                     device="cpu", calibration=0.1).fit(normal)  # fmt: skip
    outliers = rng.uniform(0, 1, (20, 16))
    # 10 calibration samples at fpr=0.05: the threshold is -inf, documented; nothing is
    # flagged, not even noise, and a warning says so and what to do
    words = r"10 calibration samples are too few for fpr=0\.05: that rate needs at least 19 "
    with pytest.warns(UserWarning, match=words + r".*call set_threshold\(X\) with at least 19"):
        assert (ae.predict(outliers) == 1).all()
    with pytest.warns(UserWarning, match="too few for fpr=0.05"):
        assert ae.threshold_ == -math.inf
    with pytest.warns(UserWarning, match="too few for contamination=0.01"):
        ae.set_params(contamination=0.01).decision_function(outliers)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(ae.set_params(contamination=None, fpr=0.1).threshold_)


def test_names_that_start_as_formulas_are_neutralised_in_the_csv(run, tmp_path, capsys):
    folder = tmp_path / "photos"
    risky = ["=1+1.png", "+1.png", "-1.png", "@SUM(A1).png", "\tt.png", "\rr.png"]
    _write(folder, [*risky, "plain.png", "a=b.png"])
    code, rows, err = _score([run, folder, "--out", tmp_path / "s.csv"], capsys)
    assert code == 0, err
    names = {r["name"] for r in rows}
    assert names == {"'" + n for n in risky} | {"plain.png", "a=b.png"}
    assert all(float(r["score"]) < 0 for r in rows)  # numbers stay numbers, minus and all


def test_error_maps_are_named_after_their_files(run, tmp_path, capsys):
    folder, maps = tmp_path / "photos", tmp_path / "maps"
    _write(folder, ["cats/a.png", "cats/A.PNG", "cats/=x.png", "cats/a__b.png", "cats__a/b.png",
                    "dogs/.x/c.png", "dogs/-rf.png", "dogs/été.png"])  # fmt: skip
    _write(folder, ["cats/b.jpg"], "JPEG")
    _not_utf8(folder / "dogs", b"caf\xe9.png")
    code, rows, err = _score([run, folder, "--maps", maps], capsys)
    assert code == 0, err
    expect = {
        "cats/=x.png": "cats___x.png",
        "cats/A.PNG": "cats__A.png",
        "cats/a.png": "cats__a-2.png",  # after cats/A.PNG: one name, in another case
        "cats/a__b.png": "cats__a__b.png",
        "cats/b.jpg": "cats__b.jpg.png",
        "cats__a/b.png": "cats__a__b-2.png",
        "dogs/-rf.png": "dogs__-rf.png",
        "dogs/caf\\xe9.png": "dogs__caf_.png",
        "dogs/été.png": "dogs__été.png",
    }  # dogs/.x/ is hidden: not data
    assert [r["name"] for r in rows] == list(expect)
    assert sorted(os.listdir(maps)) == sorted(expect.values())
    for name in expect.values():
        assert Image.open(maps / name).size == (8, 8)
    # an array has no file names: the index
    arrays = tmp_path / "three.npy"
    np.save(arrays, _digits(3) / 255.0)
    assert _score([run, arrays, "--maps", tmp_path / "maps3"], capsys)[0] == 0
    assert sorted(os.listdir(tmp_path / "maps3")) == ["0.png", "1.png", "2.png"]
