"""``aelab export --scorer`` and ``examples/score_onnx.py``: a scorer that needs onnxruntime, NumPy
and Pillow only decides as ``aelab score`` decides, on a folder of real image files of other
sizes, grey and colour, PNG and JPEG; a changed export is refused in one line. Real files, the
real command, the real script in its own process (aelab, torch, scipy and scikit-image made
unimportable there)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aelab import Autoencoder
from aelab.apps.scoring import open_scorer, read_images
from aelab.cli import main

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "score_onnx.py"
# run the script with everything but its three dependencies out of reach
ONLY_THREE = (
    "import runpy, sys\n"
    "for name in ('aelab', 'torch', 'scipy', 'skimage', 'sklearn', 'matplotlib'):\n"
    "    sys.modules[name] = None\n"
    "sys.argv = ['score_onnx.py', *sys.argv[1:]]\n"
    f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
)


def _smooth(rng, h, w, channels):
    """A smooth random image (uint8): blobs, as the training images are."""
    low = rng.random((3, 3, channels))
    im = Image.fromarray((low * 255).astype(np.uint8).squeeze(-1) if channels == 1 else
                         (low * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)  # fmt: skip
    return np.asarray(im)


def _folder(root: Path, rng, n: int, size=(24, 20)) -> Path:
    root.mkdir()
    for i in range(n):
        Image.fromarray(_smooth(rng, *size, 3)).save(root / f"{i:03d}.png")
    return root


def _to_score(root: Path, rng) -> Path:
    """Real files: other sizes (one large enough for the reduced decoding), grey and colour,
    with alpha or a palette, 8 and 16 bits, PNG and JPEG; usual images and noise."""
    root.mkdir()
    usual = [(30, 25, "RGB", "png"), (48, 40, "L", "jpg"), (240, 200, "RGB", "jpg"),
             (12, 10, "RGB", "png"), (600, 500, "RGB", "jpg"), (36, 30, "RGBA", "png"),
             (60, 50, "P", "png"), (24, 20, "I;16", "png"), (7, 9, "L", "png")]  # fmt: skip
    for i, (h, w, mode, ext) in enumerate(usual):
        a = _smooth(rng, h, w, 3)
        im = Image.fromarray(a)
        if mode == "L":
            im = im.convert("L")
        elif mode == "RGBA":
            im = Image.fromarray(np.dstack([a, np.full((h, w), 200, np.uint8)]), "RGBA")
        elif mode == "P":
            im = im.convert("P")
        elif mode == "I;16":
            im = Image.fromarray(a[..., 0].astype(np.uint16) * 257)
        im.save(root / f"usual{i}.{ext}")
    for i, (h, w, ext) in enumerate([(12, 10, "png"), (50, 40, "jpg"), (13, 17, "png")]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            root / f"noise{i}.{ext}"
        )
    return root


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A colour run at 12x10 (not square), exported with its scorer, and the folders."""
    pytest.importorskip("onnxruntime")
    root = tmp_path_factory.mktemp("scorer")
    rng = np.random.default_rng(0)
    train = _folder(root / "train", rng, 80)
    calibration = _folder(root / "calibration", rng, 30, size=(36, 30))
    run = root / "run"
    assert main(["train", "shallow", "--data", str(train), "--channels", "3", "--image-size",
                 "12x10", "--epochs", "30", "--out", str(run), "--quiet"]) == 0  # fmt: skip
    out = root / "export"
    assert main(["export", str(run), "--scorer", "--calibrate", str(calibration), "--fpr",
                 "0.1", "--out", str(out)]) == 0  # fmt: skip
    return run, out, calibration, _to_score(root / "photos", rng)


def _script(*args: str | Path):
    proc = subprocess.run([sys.executable, "-c", ONLY_THREE, *map(str, args)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(proc.stdout))) if proc.returncode == 0 else []
    return proc.returncode, rows, proc.stderr.strip().splitlines()


@pytest.mark.slow
def test_the_onnx_scorer_decides_as_aelab_score(exported, capsys):
    run, out, calibration, photos = exported
    record = json.loads((out / "export.json").read_text())
    s = record["scorer"]
    assert (s["image_size"], s["channels"], s["fpr"]) == ([12, 10], 3, 0.1)
    assert s["n_calibration"] == 30 and len(s["calibration_scores"]) == 30
    assert s["read"]["resize"]["kind"] == "skimage-antialias-linear"
    assert record["files"]["scorer.onnx"] == hashlib.sha256(
        (out / "scorer.onnx").read_bytes()).hexdigest()  # fmt: skip
    # aelab score, the command
    assert main(["score", str(run), str(photos), "--calibrate", str(calibration), "--fpr",
                 "0.1"]) == 0  # fmt: skip
    cli = {r["name"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    # the same scores at full precision, from the library the command runs
    scorer = open_scorer(run, calibration, fpr=0.1)
    images = read_images(photos, (3, 12, 10))
    scored = scorer.evaluate(images.x)
    assert s["threshold"] == scorer.threshold
    # the script, with onnxruntime, NumPy and Pillow only
    code, rows, err = _script(out, photos)
    assert code == 0 and len(err) == 1, err
    assert sorted(r["name"] for r in rows) == sorted(cli) == sorted(images.names)
    mine = {r["name"]: r for r in rows}
    for i, name in enumerate(images.names):
        assert mine[name]["outlier"] == cli[name]["outlier"], name  # every decision
        assert abs(float(mine[name]["score"]) - scored.scores[i]) <= 1e-5, name
        assert abs(float(mine[name]["score"]) - float(cli[name]["score"])) <= 1e-5, name
        assert float(mine[name]["p_value"]) == pytest.approx(scored.p_values[i], abs=1e-12)
    flags = [cli[n]["outlier"] for n in cli]
    assert "0" in flags and "1" in flags  # both decisions occur


def _tampered(out: Path, tmp: Path, edit) -> Path:
    copy = tmp / f"export-{len(list(tmp.iterdir()))}"
    copy.mkdir()
    for f in out.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    record = json.loads((copy / "export.json").read_text())
    text = edit(record, copy)
    if text is None:
        text = json.dumps(record)
    (copy / "export.json").write_text(text)
    return copy


def _set(path: str, value):
    def edit(record, copy):
        *keys, last = path.split(".")
        d = record
        for k in keys:
            d = d[k]
        if value is KeyError:
            del d[last]
        else:
            d[last] = value

    return edit


@pytest.mark.slow
def test_a_changed_export_is_one_line(exported, tmp_path):
    _, out, _, photos = exported

    def flip(record, copy):
        data = bytearray((copy / "scorer.onnx").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (copy / "scorer.onnx").write_bytes(bytes(data))

    def shuffled(record, copy):
        record["scorer"]["calibration_scores"].reverse()

    def lower(record, copy):
        record["scorer"]["threshold"] -= 0.01

    def with_nan(record, copy):
        return json.dumps(record).replace('"calibration_scores": [', '"calibration_scores": [NaN, ')

    cases = [
        (lower, "does not follow from its calibration_scores and fpr=0.1: the file was changed"),
        (_set("scorer.fpr", 0.3), "does not follow from its calibration_scores"),
        (shuffled, "are not sorted"),
        (_set("scorer.calibration_scores", []), "is not a non-empty list"),
        (with_nan, "is out of range"),
        (_set("scorer.image_size", [12, 0]), "image_size=0 is out of range"),
        (_set("scorer.image_size", "12x10"), "image_size is not a list of 2 numbers"),
        (_set("scorer.image_size", [10, 12]), "takes x ['batch', 3, 12, 10], not (B, 3, 10, 12)"),
        (_set("scorer.channels", 2), "channels=2 is not 1 or 3"),
        (_set("scorer.read.resize.kind", "bilinear"), "scorer.read.resize is not the rule"),
        (_set("scorer.read.resize.truncate", 1e9), "truncate=1000000000.0 is out of range"),
        (_set("scorer.read.grey", KeyError), "scorer.read.grey is not the rule"),
        (_set("scorer.file", "../run/model.safetensors"), "is not a file name in the export"),
        (lambda r, c: r["files"].pop("scorer.onnx") and None, "files records no SHA-256 of"),
        (flip, "scorer.onnx is not the file export.json records (its SHA-256 differs)"),
        (_set("scorer", KeyError), "has no scorer section: export with aelab export RUN"),
        (lambda r, c: "{not json", "is not readable JSON"),
        (lambda r, c: "[]", "is not an aelab export.json of format 1"),
    ]
    for edit, words in cases:
        code, rows, err = _script(_tampered(out, tmp_path, edit), photos)
        assert code == 2 and rows == [] and len(err) == 1, (words, err)
        assert err[0].startswith("score_onnx.py: error: ") and words in err[0], (words, err)
    code, _, err = _script(tmp_path / "nowhere", photos)
    assert code == 2 and "holds no export.json" in err[0]
    code, _, err = _script(out, tmp_path / "nowhere")
    assert code == 2 and "is not a folder" in err[0]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export-run") / "shallow"
    argv = ["train", "shallow", "--data", "digits", "--epochs", "1", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    return out


def test_bad_scorer_arguments_are_one_line_before_anything_is_written(digits_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(one / "only.png")
    elbo = tmp_path / "elbo"
    x = np.random.default_rng(0).uniform(0, 1, (200, 8, 8)).astype(np.float32)
    Autoencoder(model="vae", epochs=1, random_state=0, device="cpu",
                anomaly_score="elbo").fit(x).save(elbo)  # fmt: skip
    out = tmp_path / "out"
    cases = [
        ([digits_run, "--scorer", "--format", "torchscript"],
         "--scorer needs --format onnx, not 'torchscript'"),
        ([digits_run, "--scorer", "--calibrate", one],
         f"1 images of --calibrate {one} are too few for --fpr=0.05"),
        ([digits_run, "--scorer", "--fpr", "0.001"], "180 held-out images of run="),
        ([digits_run, "--fpr", "0.1"], "--fpr sets the threshold of a scorer; it needs --scorer"),
        ([digits_run, "--calibrate", one], "--calibrate sets the threshold of a scorer"),
        ([elbo, "--scorer"], "--scorer is not valid for anomaly_score='elbo'"),
    ]  # fmt: skip
    for argv, words in cases:
        assert main(["export", *map(str, argv), "--out", str(out)]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (argv, err)
        assert not out.exists()
    assert not list(tmp_path.glob(".out*"))  # no staging folder left behind
