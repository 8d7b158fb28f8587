"""The explorer's page in a real browser (Debian's chromium through Playwright): sliders moved
with the keyboard, a click on the map, an uploaded image, an interpolation, at a laptop's and a
phone's width, with no console error and no request leaving the server."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from PIL import Image

from aelab.apps.explorer import open_spaces
from aelab.apps.explorer.server import create_app

pytestmark = pytest.mark.slow  # trains, kills, builds or starts a browser

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip
LIVE = "document.getElementById('live').toDataURL()"


def wait(page, expression: str, timeout: float = 30.0) -> None:
    """Poll ``expression`` in the page (its policy forbids eval, which wait_for_function uses)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.03)


def settle(page, decodes: int) -> None:
    """Wait for more than ``decodes`` decodes, and for none in flight or waiting."""
    wait(page, f"window.aelab.decodes > {decodes} && window.aelab.idle")


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required for the browser test (apt install chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(workshop, serve_app):
    spaces = open_spaces(workshop)
    with serve_app(create_app(spaces)) as (host, port):
        yield f"http://{host}:{port}/", spaces


def _open(browser, url: str, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: r.url.startswith((url, "data:", "blob:"))
            or problems.append(f"request elsewhere: {r.url}"))  # fmt: skip
    page.goto(url)
    wait(page, "window.aelab.ready && window.aelab.decodes >= 1")
    return page, problems


def test_sliders_map_upload_and_interpolation(browser, server, tmp_path, artifacts):
    url, spaces = server
    page, problems = _open(browser, url, 1280)
    assert page.evaluate("document.getElementById('error').hidden")
    assert page.locator("#model option").count() == len(spaces)
    page.select_option("#model", "deep")
    wait(page, "window.aelab.ready && document.getElementById('summary').textContent"
               ".startsWith('deep')")  # fmt: skip
    settle(page, 0)

    # a slider moved with the keyboard redraws the image
    before, n = page.evaluate(LIVE), page.evaluate("window.aelab.decodes")
    assert page.locator("label[for=slider-0]").inner_text().startswith("unit 1")
    page.focus("#slider-0")
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    settle(page, n)
    assert page.evaluate(LIVE) != before
    assert page.evaluate("window.aelab.latencies.length") >= 30  # every key press was answered

    # a click on the map decodes that point
    before, n = page.evaluate(LIVE), page.evaluate("window.aelab.decodes")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + 0.2 * box["width"], box["y"] + 0.3 * box["height"])
    settle(page, n)
    assert page.evaluate(LIVE) != before

    # an uploaded held-out image: encoded, its reconstruction shown, sliders at its code
    space = spaces["deep"]
    x = space.heldout.images[5]
    file = tmp_path / "face.png"
    Image.fromarray((x[0] * 255 + 0.5).astype(np.uint8)).save(file)
    n = page.evaluate("window.aelab.decodes")
    page.set_input_files("#upload", str(file))
    settle(page, n)
    assert page.evaluate("document.getElementById('reconstruction').naturalWidth") == x.shape[2]
    shown = page.evaluate("Array.from(document.querySelectorAll('#sliders output'), o => +o.value)")
    np.testing.assert_allclose(shown, space.codes_heldout[5], atol=2e-2)
    assert page.evaluate("document.getElementById('error-map').width") == x.shape[2]

    # interpolation: A from one held-out image, B from another; at 1 the image is B's
    page.click("#set-a")
    n = page.evaluate("window.aelab.decodes")
    page.locator("#heldout button").nth(2).click()
    settle(page, n)
    page.click("#set-b")
    ends = page.evaluate("['a', 'b'].map(k => document.getElementById('end-' + k).toDataURL())")
    assert ends[0] != ends[1]
    page.focus("#interp")
    for key, end in (("End", ends[1]), ("Home", ends[0])):
        n = page.evaluate("window.aelab.decodes")
        page.keyboard.press(key)
        settle(page, n)
        assert page.evaluate(LIVE) == end
    n = page.evaluate("window.aelab.decodes")
    page.keyboard.press("PageUp")  # part of the way: neither end
    settle(page, n)
    assert page.evaluate(LIVE) not in ends

    # random codes, both ways, and the download link carries the current PNG
    for button in ("#random-units", "#random-pca"):
        before, n = page.evaluate(LIVE), page.evaluate("window.aelab.decodes")
        page.click(button)
        settle(page, n)
        assert page.evaluate(LIVE) != before
    with page.expect_download() as download:
        page.click("#download")
    path = download.value.path()
    assert Image.open(path).size == (x.shape[2], x.shape[1])

    page.screenshot(path=str(artifacts / "explore-1280.png"), full_page=True)
    page.close()
    assert problems == []


def test_pca_sliders_and_a_phone_screen(browser, server, artifacts):
    url, _ = server
    page, problems = _open(browser, url, 390)
    wait(page, "document.getElementById('summary').textContent.startsWith('shallow')")
    # 100 code units: sliders on principal components, 10 shown of 32
    assert page.locator("#sliders .slider:not([hidden])").count() == 10
    assert page.locator("#sliders .slider").count() == 32
    page.select_option("#components", "3")
    assert page.locator("#sliders .slider:not([hidden])").count() == 3
    settle(page, 0)
    before, n = page.evaluate(LIVE), page.evaluate("window.aelab.decodes")
    page.focus("#slider-0")
    page.keyboard.press("End")
    settle(page, n)
    assert page.evaluate(LIVE) != before
    # nothing wider than the phone's screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(artifacts / "explore-390.png"), full_page=True)
    page.close()
    assert problems == []
    assert Image.open(artifacts / "explore-390.png").size[0] == 390


def test_a_bad_upload_says_why_on_the_page(browser, server, tmp_path):
    url, _ = server
    page, problems = _open(browser, url, 1280)
    file = tmp_path / "notes.png"
    file.write_bytes(b"these are notes, not an image")
    page.set_input_files("#upload", str(file))
    wait(page, "!document.getElementById('error').hidden")
    assert "not a PNG" in page.inner_text("#error")
    page.close()
    # the browser logs the 415 answer itself; nothing else went wrong
    assert all("415" in p for p in problems), problems


@pytest.mark.parametrize("width", [1280, 390])
def test_a_click_on_a_unit_shows_its_page(browser, server, artifacts, width):
    url, spaces = server
    page, problems = _open(browser, url, width)
    page.select_option("#model", "conv")
    wait(page, "window.aelab.ready && document.getElementById('summary').textContent"
               ".startsWith('conv')")  # fmt: skip
    buttons = page.locator("#units button.unit")
    assert buttons.count() == spaces["conv"].dim
    first = spaces["conv"].unit_list()[0]["unit"]  # the most useful unit comes first
    assert buttons.first.get_attribute("data-unit") == str(first)
    buttons.first.click()
    wait(page, "!document.getElementById('unit-page').hidden && "
               "document.getElementById('unit-page').naturalWidth > 0")  # fmt: skip
    shown = page.evaluate("document.getElementById('unit-page').getBoundingClientRect().width")
    assert 0 < shown <= width  # never wider than the screen
    page.locator("#units-panel").screenshot(path=str(artifacts / f"explore-units-{width}.png"))
    assert problems == []
