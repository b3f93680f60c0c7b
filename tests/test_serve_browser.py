"""The `fs serve` page in a real headless browser (Debian's chromium driven by Playwright).

Types a query and waits for the thumbnails to load, searches with an uploaded image, opens a
class's page and the unreadable rows, and takes a screenshot. Skips, with the reason, only
where Playwright or a chromium binary is not installed (.ci/run installs both where it can).
Set FS_SERVE_SCREENSHOT=path to keep the screenshot.
"""
from __future__ import annotations

import os
import shutil

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.images import write_random_image
from tests.serve_server import CLASSES, UNREADABLE, make_served_store, running_server

pytestmark = pytest.mark.slow
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("FS_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_checkpoint, browser):
    data = make_served_store(tmp_path_factory.mktemp("serve-browser"), tiny_checkpoint)
    with running_server(data["store"], data["encoder"]) as url:
        yield {**data, "url": url}


def loaded_images(page, selector):
    """Wait until every <img> under ``selector`` has loaded; return their natural widths."""
    page.wait_for_function(
        "sel => { const imgs = [...document.querySelectorAll(sel + ' img')];"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        arg=selector, timeout=30_000)
    return page.eval_on_selector_all(f"{selector} img", "imgs => imgs.map(i => i.naturalWidth)")


def test_query_shows_thumbnails_and_screenshot(served, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(served["url"])
    page.wait_for_function("document.querySelectorAll('#split option').length === 2")
    page.select_option("#split", "train")
    page.fill("#k", "6")
    page.fill("#query", "a photo of a dog")
    page.press("#query", "Enter")
    page.wait_for_selector("#results figure.hit")
    widths = loaded_images(page, "#results")
    assert len(widths) == 6 and all(w > 0 for w in widths)

    expected = httpx.get(served["url"] + "api/search", params={"query": "a photo of a dog", "k": 6, "split": "train"},
                         timeout=60).json()["hits"]
    shown_ids = page.eval_on_selector_all("#results .hit .id", "els => els.map(e => e.textContent)")
    shown_classes = page.eval_on_selector_all("#results .hit .cls", "els => els.map(e => e.textContent)")
    shown_scores = page.eval_on_selector_all("#results .hit .score", "els => els.map(e => e.textContent)")
    assert shown_ids == [h["id"] for h in expected]
    assert shown_classes == [h["class"] for h in expected]
    assert shown_scores == [f"{h['score']:.3f}" for h in expected]
    assert "6 hits" in page.text_content("#status")

    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size[0] == 1200
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 10  # thumbnails and text, not a blank page
    if os.environ.get("FS_SERVE_SCREENSHOT"):
        shutil.copy(shot, os.environ["FS_SERVE_SCREENSHOT"])
    assert errors == []


def test_uploaded_image_and_bad_query_in_the_page(served, browser, tmp_path):
    page = browser.new_page()
    page.goto(served["url"])
    page.wait_for_function("document.querySelectorAll('#split option').length === 2")
    page.select_option("#split", "train")
    page.fill("#k", "3")
    query = write_random_image(tmp_path / "query.jpg", size=(64, 64), seed=5)
    page.set_input_files("#file", str(query))
    page.wait_for_function("document.querySelector('#status').textContent.includes('query.jpg')")
    assert len(loaded_images(page, "#results")) == 3

    page.fill("#k", "99")
    page.fill("#query", "a photo of an emu")
    page.press("#query", "Enter")
    page.wait_for_selector("#status.error")
    assert "larger than split 'train'" in page.text_content("#status")
    assert page.query_selector_all("#results figure") == []


def test_class_page_and_unreadable_rows(served, browser):
    page = browser.new_page()
    page.goto(served["url"] + "#classes/train")
    page.wait_for_selector("#class-list a")
    links = page.eval_on_selector_all("#class-list a", "els => els.map(e => e.textContent)")
    assert links == [f"{c} ({CLASSES[c] + (c == 'emu')})" for c in sorted(CLASSES)]
    page.click("#class-list a >> text=dog")
    page.wait_for_selector("#class-rows figure.hit")
    assert len(loaded_images(page, "#class-rows")) == CLASSES["dog"]
    ids = page.eval_on_selector_all("#class-rows .hit .id", "els => els.map(e => e.textContent)")
    assert ids == [f"dog/{i}.jpg" for i in range(CLASSES["dog"])]

    page.click("#nav-unreadable")
    page.select_option("#unreadable-split", "train")
    page.wait_for_selector("#unreadable-table tbody tr")
    rows = page.eval_on_selector_all("#unreadable-table tbody tr",
                                     "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))")
    assert sorted(r[1] for r in rows) == sorted(UNREADABLE)
    assert all(r[3] for r in rows)


def test_a_stale_unreadable_answer_does_not_replace_the_chosen_split(served, browser):
    """The unreadable page first asks for the default split; choosing another split while that
    answer is still out must keep the chosen split's rows when the stale answer arrives last."""
    page = browser.new_page()
    held = []

    def hold_other_splits(route):
        if "split=train" in route.request.url:
            route.continue_()
        else:
            held.append(route)  # answered only after the train rows are shown

    page.route("**/api/unreadable?*", hold_other_splits)
    page.goto(served["url"] + "#unreadable")
    page.wait_for_function("document.querySelectorAll('#unreadable-split option').length === 2")
    page.select_option("#unreadable-split", "train")
    page.wait_for_selector("#unreadable-table tbody tr")
    assert held, "the default split's request was not made first"
    for route in held:
        route.continue_()
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)
    ids = page.eval_on_selector_all("#unreadable-table tbody tr", "trs => trs.map(tr => tr.cells[1].textContent)")
    assert sorted(ids) == sorted(UNREADABLE)
