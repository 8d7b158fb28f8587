"""The report's page in a real browser (Debian's chromium, driven by Playwright) at a laptop's
1280 and a phone's 390 CSS pixels: no console error, every image decoded and every model shown;
each figure shown at the size it was drawn for or smaller, never wider than the screen, its text
at a readable size, and every figure opening full size on a click. Screenshots go to the
``artifacts`` folder."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from aelab.apps.workshop import WORKSHOP_MODELS
from aelab.plots.style import font_px

FIVE = list(WORKSHOP_MODELS)
READABLE_PX = 9.0  # the smallest text, in CSS pixels, a figure may show at its size on the page

FIGURES = """els => els.map(e => ({
    id: e.closest("figure").id,
    shown: e.clientWidth,
    right: e.getBoundingClientRect().right,
    natural: e.naturalWidth,
    complete: e.complete,
    width: Number(e.dataset.width),
    narrow: Number(e.dataset.narrowWidth || 0),
    main: e.currentSrc === e.getAttribute("src"),
}))"""


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required for the browser test (apt install chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"],
        )  # fmt: skip
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 390])  # a laptop and a phone
def test_the_report_reads_at_a_laptops_and_a_phones_width(workshop, browser, artifacts, width):
    """Every figure filled the ~1,100 px page whatever its content: a 600 px chart upscaled and
    blurry, 28x28 digits 600 px tall, 3 px text at 390 px and nothing to open full size."""
    errors: list[str] = []
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto((workshop / "report.html").as_uri())
    page.wait_for_load_state("load")
    figures = page.eval_on_selector_all("figure img", FIGURES)
    assert len(figures) == len(list((workshop / "figures").iterdir()))
    narrowed = 0
    for f in figures:
        assert f["complete"] and f["natural"] > 0, f
        assert f["right"] <= width + 0.5, f  # never wider than the screen
        drawn_for = f["width"] if f["main"] else f["narrow"]
        narrowed += not f["main"]
        scale = f["shown"] / drawn_for
        assert scale <= 1.001, f  # never enlarged past what it was drawn for (blur)
        assert font_px() * scale >= READABLE_PX, f  # its text readable where it is shown
        assert f["natural"] >= 2 * drawn_for - 1 or not f["main"], f  # sharp on dense screens
    if width < 400:
        assert narrowed >= 3  # the learning curves, the 2-D maps, the robustness panels...
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scroll
    metrics = json.loads((workshop / "metrics.json").read_text())
    detects = all("anomaly" in m for m in metrics["models"].values())  # with --normals
    tables = ("#metrics", "#inside-table") + (("#anomaly",) if detects else ())
    for table in tables:
        rows = page.eval_on_selector_all(f"{table} tbody tr", "e => e.map(r => r.dataset.model)")
        assert rows == list(metrics["models"]) == FIVE
    shot = artifacts / f"report-{width}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == width
    for f in figures:  # every figure opens full size, and closes
        page.click(f"figure#{f['id']} a.zoom")
        assert page.evaluate("document.getElementById('zoom').open"), f["id"]
        big = page.evaluate(
            "(() => { const i = document.querySelector('#zoom img'); "
            "return [i.getBoundingClientRect().width, i.naturalWidth, i.complete]; })()"
        )
        assert big[2] and big[1] > 0 and big[0] >= f["width"] - 0.5, (f["id"], big)
        if f["id"] == "learning_curves":
            page.screenshot(path=str(artifacts / f"report-{width}-open.png"))
        page.keyboard.press("Escape")
        assert not page.evaluate("document.getElementById('zoom').open")
    page.close()
    assert errors == []
