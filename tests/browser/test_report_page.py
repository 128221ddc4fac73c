"""report.html of the quickstart study in a real headless Chromium: no script errors, every image
loaded, every section there; a screenshot is kept beside it."""

from pathlib import Path

import pytest

from gpt4llm.pipeline.report import SECTIONS

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (make test installs it)")


def test_report_opens_cleanly_in_chromium(quickstart_run):
    from playwright.sync_api import sync_playwright

    page_file = quickstart_run["out"] / "report.html"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])")
        sections = page.evaluate("Array.from(document.querySelectorAll('section')).map(s => s.id)")
        page.screenshot(path=str(page_file.with_suffix(".png")), full_page=True)
        browser.close()
    assert errors == []
    assert len(images) >= 8 and all(ok for _, ok in images), images
    assert sections == list(SECTIONS)
    assert page_file.with_suffix(".png").stat().st_size > 10_000
