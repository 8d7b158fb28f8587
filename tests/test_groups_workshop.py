"""``aelab run --groups`` end to end: the file kept as the workshop's own ``groups.csv``, the
report's attribute directions from the user's groups (recomputed from the saved run), the
explorer's group control answering and refusing requests, and the page in Chromium."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sklearn.datasets import load_digits

from aelab.analysis import keeps
from aelab.apps.explorer import open_spaces
from aelab.apps.explorer.server import create_app
from aelab.cli import main
from aelab.runs.manifest import Manifest
from aelab.runs.open import open_runs

pytestmark = pytest.mark.slow  # trains, starts a server and a browser


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """A one-model digits workshop (1 epoch) with groups 'round' and 'straight $x$' on every
    third image, and an HTML-looking group on a few."""
    folder = tmp_path_factory.mktemp("grouped")
    y = load_digits().target
    rows = ["image,group"]
    for i in range(0, len(y), 3):
        rows.append(f"{i},{'round' if y[i] in (0, 6, 8, 9) else 'straight $x$'}")
    rows += ["1,<b>bold</b>", "4,<b>bold</b>"]
    groups = folder / "mine.csv"
    groups.write_text("\n".join(rows) + "\n")
    out = folder / "run"
    code = main(["run", "--data", "digits", "--models", "deep", "--epochs", "1",
                 "--out", str(out), "--groups", str(groups), "--quiet"])  # fmt: skip
    assert code == 0
    return out, groups


def test_report_takes_its_directions_from_the_users_groups(grouped):
    out, groups = grouped
    assert (out / "groups.csv").read_bytes() == groups.read_bytes()
    assert "groups.csv" in Manifest.read(out).files  # aelab's own file: --overwrite may replace it
    m = json.loads((out / "metrics.json").read_text())
    g = m["models"]["deep"]["inside"]["groups"]
    assert g["source"] == "groups.csv" and g["images"] == "held-out"
    assert [x["name"] for x in g["groups"]][:2] == ["round", "straight $x$"]
    # recomputed from the saved run: the held-out images' codes and the file's groups
    opened = open_runs(out, data=True)
    run, split = opened.runs["deep"], opened.split
    labels = opened.image_groups.labels(split.heldout)
    which = [opened.image_groups.names.index(x["name"]) for x in g["groups"]]
    want = keeps.group_directions(run.encode(split.heldout.images), labels, which)
    got = np.array([x["direction"] for x in g["groups"]])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert g["n_images"] == int(np.sum(labels >= 0))
    page = (out / "report.html").read_text()
    assert (out / "figures" / "groups_deep.png").is_file()
    assert 'href="figures/groups_deep.png"' in page
    assert "the groups of groups.csv" in page and "straight $x$" in page
    assert "<b>bold</b>" not in page  # a group's name is text, never markup
    assert "codes taken on the held-out images" in page


def test_aelab_config_of_the_workshop_names_its_copy_of_the_groups(grouped, tmp_path):
    from aelab.cli.config import settings_of

    out, _ = grouped
    command, settings = settings_of(out)
    assert command == "run" and settings["groups"] == str((out / "groups.csv").resolve())


def test_a_workshop_without_groups_keeps_the_labels_and_person_morph(workshop):
    m = json.loads((workshop / "metrics.json").read_text())
    g = m["models"]["deep"]["inside"]["groups"]
    assert g["source"] == "labels" and g["images"] == "held-out"
    assert [x["name"] for x in g["groups"]] == ["8", "9"]  # the held-out digits
    assert (workshop / "figures" / "morph_deep.png").is_file()
    assert (workshop / "figures" / "groups_deep.png").is_file()


def test_explorer_serves_the_groups_and_refuses_bad_requests(grouped):
    from starlette.testclient import TestClient

    out, _ = grouped
    spaces = open_spaces(out)
    client = TestClient(create_app(spaces), base_url="http://127.0.0.1")
    d = client.get("/api/models/deep/groups").json()
    assert d["available"] and d["source"] == "groups.csv" and d["reach"] == 2.0
    assert [x["name"] for x in d["groups"]][:2] == ["round", "straight $x$"]
    code = spaces["deep"].codes_heldout[0].tolist()
    one = client.post("/api/models/deep/along", json={"group": "round", "t": 1.0, "code": code})
    assert one.status_code == 200 and one.headers["content-type"] == "image/png"
    moved = np.asarray(code) + np.asarray(d["directions"][0])
    same = client.post("/api/models/deep/decode", json={"code": moved.tolist()})
    assert one.content == same.content
    for body, message in [
        ({"group": "square", "t": 1, "code": code}, "group='square' is not a group; allowed: "),
        (
            {"group": "round", "t": 2.5, "code": code},
            "t=2.5 is not valid; allowed: a number from -2 to 2",
        ),
        ({"group": "round", "t": True, "code": code}, "t=True is not valid"),
        ({"group": "round", "t": 1}, 'body has no "code"'),
        ({"group": "round", "t": 1, "code": "x"}, "code is not a list of numbers"),
        ({"group": ["round"], "t": 1, "code": code}, "group=\"['round']\" is not a group"),
    ]:
        r = client.post("/api/models/deep/along", json=body)
        assert r.status_code == 400, body
        assert r.json()["error"].startswith(message), r.json()
        assert "\n" not in r.json()["error"]


def test_the_page_moves_the_code_along_a_group(grouped, serve_app):
    from test_explore_page import CHROMIUM_ARGS, LIVE, settle, wait

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required for the browser test (apt install chromium)"
    from playwright.sync_api import sync_playwright

    out, _ = grouped
    with serve_app(create_app(open_spaces(out))) as (host, port), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.goto(f"http://{host}:{port}/")
        wait(page, "window.aelab.ready && window.aelab.decodes >= 1")
        settle(page, 0)
        assert not page.locator("#groups-body").is_hidden()
        assert page.locator("#group option").count() >= 2
        assert "groups.csv" in page.locator("#groups-hint").inner_text()
        page.select_option("#group", "straight $x$")
        before, n = page.evaluate(LIVE), page.evaluate("window.aelab.decodes")
        along = page.locator("#along")
        along.focus()
        for _ in range(20):  # to +1.00, by the keyboard
            page.keyboard.press("ArrowRight")
        settle(page, n)
        assert page.locator("#along-value").inner_text() == "+1.00"
        assert page.evaluate(LIVE) != before
        beside = "document.getElementById('along-live').toDataURL()"
        assert page.evaluate(beside) == page.evaluate(LIVE)  # shown beside the slider too
        assert page.evaluate("document.getElementById('error').hidden")
        n = page.evaluate("window.aelab.decodes")  # before the change: its decode may be quick
        page.select_option("#group", "round")  # back to where the slider started
        settle(page, n)
        assert page.locator("#along-value").inner_text() == "+0.00"
        assert page.evaluate(LIVE) == before
        assert problems == []
        browser.close()
