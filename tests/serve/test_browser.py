"""The web page in headless Chromium (Debian's chromium driven by Playwright): search, results, explanation."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} is absent (apt-get install chromium) for the browser test")


@pytest.fixture(scope="module")
def page(live):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            pg = browser.new_page()
            errors: list[str] = []
            pg.on("pageerror", lambda exc: errors.append(str(exc)))
            pg.errors = errors
            yield pg
        finally:
            browser.close()


def test_type_a_query_see_results_open_an_explanation(page, live, search_index):
    page.goto(live.url + "/")
    page.wait_for_function("document.getElementById('footer').textContent.includes('videos')")
    page.fill("#q", "A man w12 is riding w40 on a w7")
    page.press("#q", "Enter")
    page.wait_for_selector(".card")
    cards = page.locator(".card")
    assert cards.count() == 10
    expected = [h.video_id for h in search_index.search("A man w12 is riding w40 on a w7", k=10)]
    assert [cards.nth(i).get_attribute("data-video-id") for i in range(10)] == expected
    assert "10 of 16 videos" in page.inner_text("#status")
    # thumbnails of the clips with a video file load; the others say so
    page.wait_for_function("[...document.querySelectorAll('.strip img')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator(".strip img").count() == sum(search_index.thumbnail(v) is not None for v in expected)
    # open the explanation of the first clip that has frames to show
    target = next(v for v in expected if search_index.thumbnail(v) is not None)
    page.click(f".card[data-video-id='{target}'] .explain-btn")
    page.wait_for_selector("#explanation .contrib-row")
    assert page.locator("#explanation .contrib-row").count() == 7
    assert page.is_visible("#explanation") and target in page.inner_text("#explanation h2")
    assert page.locator("#explanation .phrase[data-kind='verb']").count() >= 1
    assert "riding" in page.inner_text("#explanation")
    exp = search_index.explain("A man w12 is riding w40 on a w7", target)
    tiles = page.locator("#explanation .phrase").first.locator(".frames").first.locator(".frame")
    assert tiles.count() == exp.num_frames
    assert "thumbnail.jpg" in (tiles.first.get_attribute("style") or "")
    assert page.locator("#explanation video").count() == 1  # the clip's preview
    # the moment: drawn on the strip over its frames, and the preview starts there
    hit = next(h for h in search_index.search("A man w12 is riding w40 on a w7", k=10) if h.video_id == target)
    mark = page.locator(f".card[data-video-id='{target}'] .span-mark")
    assert mark.count() == 1
    style = mark.get_attribute("style")
    assert f"left: {hit.moment.first_frame * 48}px" in style
    assert f"width: {(hit.moment.last_frame - hit.moment.first_frame + 1) * 48}px" in style
    assert hit.moment.format() in page.inner_text(f".card[data-video-id='{target}'] .moment")
    src = page.locator("#explanation video").get_attribute("src")
    assert src.endswith(f"#t={hit.moment.start:.2f}")
    # the URL keeps the query: a reload shows the same results
    page.reload()
    page.wait_for_selector(".card")
    assert page.locator(".card").first.get_attribute("data-video-id") == expected[0]
    assert not page.errors


def test_bad_query_shows_the_error_and_the_page_keeps_working(page, live):
    page.goto(live.url + "/")
    page.fill("#q", "zebra xylophone")
    page.press("#q", "Enter")
    page.wait_for_selector("#status.error")
    assert "vocabulary" in page.inner_text("#status")
    assert page.locator(".card").count() == 0
    page.fill("#q", "w3 w17 w42")
    page.click("#go")
    page.wait_for_selector(".card")
    assert page.locator(".card").count() == 10 and not page.errors
