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
    page.wait_for_selector("#explanation ul.reasons li")
    assert page.is_visible("#explanation") and target in page.inner_text("#explanation h2")
    # plain words first; the seven scores and the attention one click away
    assert "seen at" in page.inner_text("#explanation ul.reasons")
    assert not page.is_visible("#explanation .contrib-row")
    page.click("#explanation details.technical > summary")
    assert page.locator("#explanation .contrib-row").count() == 7 and page.is_visible("#explanation .contrib-row")
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
    frames = search_index.video(target)["length"]
    strip = page.locator(f".card[data-video-id='{target}'] .strip").bounding_box()
    box = mark.bounding_box()
    assert box["x"] == pytest.approx(strip["x"] + strip["width"] * hit.moment.first_frame / frames, abs=1.5)
    assert box["width"] == pytest.approx(strip["width"] * (hit.moment.last_frame - hit.moment.first_frame + 1) / frames,
                                         abs=1.5)
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


@pytest.mark.parametrize("width", [1400, 800])
def test_the_strip_fits_its_card_and_the_span_stays_in_view(page, live, search_index, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live.url + "/?q=" + "w3 w17 w42".replace(" ", "+") + "&k=20&mode=exhaustive")
    page.wait_for_selector(".card")
    # the URL restores the query, k and the mode
    assert page.input_value("#q") == "w3 w17 w42" and page.input_value("#k") == "20"
    assert page.is_checked("#exact") and page.locator(".card").count() == 16
    page.wait_for_function("[...document.querySelectorAll('.strip img')].every(i => i.complete && i.naturalWidth > 0)")
    for i in range(page.locator(".card").count()):
        card = page.locator(".card").nth(i)
        if card.locator(".strip img").count() == 0:
            continue
        c, img = card.bounding_box(), card.locator(".strip img").bounding_box()
        assert img["x"] >= c["x"] and img["x"] + img["width"] <= c["x"] + c["width"] + 0.5
        for m in card.locator(".span-mark").all():
            b = m.bounding_box()
            assert b["x"] >= img["x"] - 0.5 and b["x"] + b["width"] <= img["x"] + img["width"] + 0.5
    # each hit shows its captions, and the bar has a legend in plain words
    first = page.locator(".card").first
    vid = first.get_attribute("data-video-id")
    caps = search_index.captions_of(vid)
    if caps:
        assert caps[0] in first.inner_text()
    assert page.is_visible("#legend") and "whole sentence" in page.inner_text("#legend")
    assert not page.errors


def test_example_queries_are_offered_and_run(page, live, search_index):
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(live.url + "/")
    page.wait_for_selector("#examples button")
    buttons = page.locator("#examples button")
    assert buttons.count() == len(search_index.examples()) >= 1
    text = buttons.first.inner_text()
    buttons.first.click()
    page.wait_for_selector(".card")
    assert page.input_value("#q") == text and "q=" in page.url
    assert not page.errors
