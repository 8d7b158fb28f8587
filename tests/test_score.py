"""``aelab score RUN DATA``: a CSV row per readable image, error maps on request, one-line
errors for bad input; junk in the folder is skipped and named."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from aelab.cli import main
from aelab.runs.run import load_run


@pytest.fixture(scope="module")
def folder(workshop, tmp_path_factory):
    root = tmp_path_factory.mktemp("to_score")
    x = load_run(workshop / "deep").data(carve=False).heldout.images[:10]
    (root / "faces").mkdir()
    for i, im in enumerate(x):
        Image.fromarray((im[0] * 255 + 0.5).astype(np.uint8)).save(root / "faces" / f"{i}.png")
    (root / "README.txt").write_text("not an image")
    (root / "faces" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return root


def test_a_folder_with_junk_gets_a_row_per_readable_image(workshop, folder, tmp_path, capsys):
    out, maps = tmp_path / "scores.csv", tmp_path / "maps"
    assert main(["score", str(workshop / "deep"), str(folder), "--out", str(out),
                 "--maps", str(maps)]) == 0  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "10 images" in err[0] and "faces/broken.png" in err[0]
    # a run of aelab train that kept unseen images of its training people: they calibrate,
    # not its held-out people (the unusual ones)
    normals = load_run(workshop / "deep").data(carve=False).normals
    assert f"the run's {len(normals)} normal images" in err[0]
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["name"] for r in rows] == sorted(f"faces/{i}.png" for i in range(10))
    for r in rows:
        p = float(r["p_value"])
        assert 0 < p <= 1 and r["outlier"] in ("0", "1") and float(r["score"]) <= 0
        assert (r["outlier"] == "1") == (p <= 0.05)
    # each map named after its file
    assert sorted(f.name for f in maps.iterdir()) == sorted(f"faces__{i}.png" for i in range(10))
    assert Image.open(maps / "faces__0.png").size == (8, 8)
    # printed to stdout without --out; a stricter rate flags no more images
    assert main(["score", str(workshop / "deep"), str(folder), "--fpr", "0.01"]) == 0
    strict = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sum(r["outlier"] == "1" for r in strict) <= sum(r["outlier"] == "1" for r in rows)


def test_bad_input_is_one_line(workshop, folder, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    taken = tmp_path / "taken.csv"
    taken.write_text("mine")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((3, 8, 8), np.nan))
    run = str(workshop / "deep")
    cases = [
        ([run, str(empty)], "holds no images"),
        ([run, str(folder), "--out", str(taken)], "exists"),
        ([run, str(folder), "--maps", str(full)], "not an empty folder"),
        ([run, str(folder), "--fpr", "2"], "--fpr 2.0 is not valid"),
        ([run, str(nan)], "nan.npy"),
        ([str(tmp_path / "nowhere"), str(folder)], "nowhere"),
    ]
    for argv, words in cases:
        assert main(["score", *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (argv, err)
    assert taken.read_text() == "mine" and [f.name for f in full.iterdir()] == ["keep.txt"]
