"""The explorer's "How unusual" panel: each image's calibrated map on the fixed scale of
``aelab score --maps``, recomputed here from the detector itself; the decision ``aelab score``
makes on the same image; hostile requests as one line; the panel in a real browser."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from aelab.analysis import anomaly
from aelab.analysis.detector import Detector
from aelab.apps.explorer import open_spaces
from aelab.apps.explorer.server import create_app
from aelab.apps.explorer.space import LatentSpace
from aelab.cli import main
from aelab.plots.maps import significance_rgb
from aelab.runs.open import open_runs
from aelab.runs.run import load_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A shallow model, three epochs on scikit-learn's 8x8 digits (its held-out images
    calibrate, as ``aelab score`` calibrates without --calibrate)."""
    out = tmp_path_factory.mktemp("explore-maps") / "shallow"
    argv = ["train", "shallow", "--data", "digits", "--epochs", "3", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def spaces(run) -> dict[str, LatentSpace]:
    spaces = open_spaces(run)
    (name,) = spaces
    s = spaces[name]
    # the same model over a split that holds out nothing: nothing to calibrate on
    empty = s.split.heldout.subset(np.zeros(0, dtype=int))
    spaces["blind"] = LatentSpace(s.run, dataclasses.replace(s.split, heldout=empty, normals=None))
    return spaces


@pytest.fixture(scope="module")
def client(spaces):
    from starlette.testclient import TestClient

    with TestClient(create_app(spaces), base_url="http://127.0.0.1") as c:
        yield c


def _pixels(url: str) -> np.ndarray:
    head, data = url.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _refused(r, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    assert list(r.json()) == ["error"]
    error = r.json()["error"]
    assert error and "\n" not in error and "Traceback" not in error
    for w in words:
        assert w in error, error


def test_the_map_is_the_detectors_own_on_the_fixed_scale(run, spaces, client):
    name = next(iter(spaces))
    s = spaces[name]
    about = client.get(f"/api/models/{name}/anomaly").json()
    assert about["available"] and about["level"] == about["fpr"] == 0.05
    assert "p=0.05" in about["legend"] and "white" in about["legend"]
    assert "probability at most 0.05" in about["guarantee"]
    assert "not a test of the whole image" in about["guarantee"]
    # recomputed here, from a detector of the run calibrated on its held-out images
    detector = Detector(load_run(run))
    held = open_runs(run, data=True).split.heldout
    detector.calibrate(torch.from_numpy(held.images), pixels=True)
    level = detector.pixel_level(0.05)
    for index in (len(s.train), len(s.train) + 7, 3):
        got = client.get(f"/api/models/{name}/anomaly/{index}").json()
        x = torch.from_numpy(s.image(index)[None])
        maps = detector.maps(x)
        expected = significance_rgb(anomaly.significance(detector.pixel_p_values(maps)), level)
        np.testing.assert_array_equal(_pixels(got["map"]), expected[0])
        score = detector.scores(x)
        assert got["score"] == pytest.approx(score[0], rel=1e-9)
        assert got["p_value"] == pytest.approx(detector.p_values(score)[0])
        assert got["outlier"] == bool(score[0] < detector.threshold(0.05))
        why = got["explanation"]
        assert why["text"] and 0 <= why["share"] <= 1
        for r in why["regions"]:
            top, left, bottom, right = r["box"]
            assert 0 <= top <= bottom < 8 and 0 <= left <= right < 8


def test_an_upload_is_flagged_as_aelab_score_flags_it(run, spaces, client, tmp_path, capsys):
    """Held-out digits and noise, as files: the explorer's decision on each uploaded file is
    the one ``aelab score`` writes for it."""
    name = next(iter(spaces))
    held = open_runs(run, data=True).split.heldout.images
    folder = tmp_path / "images"
    folder.mkdir()
    files = {f"digit{i}.png": (held[i, 0] * 255 + 0.5).astype(np.uint8) for i in range(6)}
    rng = np.random.default_rng(0)
    files.update({f"noise{i}.png": rng.integers(0, 256, (8, 8), dtype=np.uint8) for i in range(3)})
    for file, pixels in files.items():
        (folder / file).write_bytes(_png(pixels))
    out = tmp_path / "scores.csv"
    assert main(["score", str(run), str(folder), "--out", str(out)]) == 0
    capsys.readouterr()
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(out.read_text()))}
    assert set(rows) == set(files)
    flagged = []
    for file in files:
        r = client.post(f"/api/models/{name}/anomaly", content=(folder / file).read_bytes(),
                        headers={"content-type": "image/png"})  # fmt: skip
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["outlier"] == (rows[file]["outlier"] == "1"), file
        assert got["score"] == pytest.approx(float(rows[file]["score"]), rel=1e-5)
        assert _pixels(got["map"]).shape == (8, 8, 3)
        flagged.append(got["outlier"])
    assert any(flagged)  # noise is flagged: both decisions are checked


def test_hostile_requests_are_one_line(spaces, client):
    name = next(iter(spaces))
    _refused(client.get("/api/models/nope/anomaly/0"), 404, "nope")
    _refused(client.get("/api/models/nope/anomaly"), 404, "nope")
    _refused(client.get(f"/api/models/{name}/anomaly/x"), 400, "'x'")
    _refused(client.get(f"/api/models/{name}/anomaly/-1"), 400, "'-1'")
    _refused(client.get(f"/api/models/{name}/anomaly/{10**30}"), 404, "index")
    post = f"/api/models/{name}/anomaly"
    _refused(client.post(post, content=b"plain text", headers={"content-type": "image/png"}), 415)
    _refused(client.post(post, content=b"\x89PNG\r\n\x1a\nbroken",
                         headers={"content-type": "image/png"}), 415)  # fmt: skip
    _refused(client.post(post, content=b"", headers={"content-type": "image/png"}), 400, "empty")
    _refused(client.post(post, content=b"x", headers={"content-type": "text/html"}), 415)
    _refused(client.put(post, content=b"x"), 405)
    # a model that cannot give maps: one sentence why, and no map
    about = client.get("/api/models/blind/anomaly").json()
    assert about == {"available": False, "why": about["why"]}
    assert "\n" not in about["why"] and "holds out no images" in about["why"]
    _refused(client.get("/api/models/blind/anomaly/0"), 409, "holds out no images")


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip


def _wait(page, expression: str, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.03)


def test_the_panel_shows_the_map_at_a_laptops_and_a_phones_width(run, serve_app, artifacts):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required for the browser test (apt install chromium)"
    from playwright.sync_api import sync_playwright

    spaces = open_spaces(run)
    (name,) = spaces
    first = len(spaces[name].train)  # the page starts from the first held-out image
    with serve_app(create_app(spaces)) as (host, port), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for width in (1280, 390):
            page = browser.new_page(viewport={"width": width, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m, seen=problems: m.type in ("error", "warning")
                    and seen.append(m.text))  # fmt: skip
            page.on("pageerror", lambda e, seen=problems: seen.append(str(e)))
            page.goto(f"http://{host}:{port}/")
            _wait(page, f"window.aelab.ready && window.aelab.unusual === '{first}'")
            assert page.is_visible("#unusual-map") and page.is_visible("#unusual-image")
            assert page.evaluate("document.getElementById('unusual-map').naturalWidth") == 8
            legend = page.inner_text("#unusual-legend")
            assert "white = the per-pixel threshold p=0.05" in legend
            assert "probability at most 0.05" in page.inner_text("#unusual-guarantee")
            assert "flagged at fpr=0.05" in page.inner_text("#unusual-verdict")
            box = page.locator("#unusual-map").bounding_box()
            assert box["width"] >= 64  # drawn large enough to see, on both widths
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"horizontal scroll at {width} px: {scroll}"
            page.locator("#unusual-panel").screenshot(path=str(artifacts / f"unusual-{width}.png"))
            assert not problems, problems
            page.close()
        browser.close()
