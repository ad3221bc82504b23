"""`genlab serve` in a real browser (Playwright driving the system Chromium), as a user would use it.

No skip: if the browser cannot start these tests fail (the web app is not tested otherwise). Every request the
page makes is recorded; none may leave localhost (the app works offline).
"""

import io
import json
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from genlab.serve import CHROMIUM, CHROMIUM_FLAGS

TIMEOUT = 60_000  # ms


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, served):
    """One page for the module's tests (loading Gradio's front end is the slow part); every host it contacted is
    checked at the end."""
    url, _ = served
    hosts = set()
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT)

    def record(request):
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss"):
            hosts.add(parts.hostname)

    pg.on("request", record)
    pg.goto(url)
    pg.wait_for_selector("#g_go")
    yield pg
    context.close()
    assert "127.0.0.1" in hosts  # the recorder saw the page's own requests
    assert hosts <= {"127.0.0.1", "localhost"}, f"the page fetched from other hosts: {sorted(hosts - {'127.0.0.1'})}"


def wait_text(pg, elem_id: str, text: str, timeout: float = TIMEOUT / 1000) -> None:
    """Wait until #elem_id shows `text`; on timeout fail with what it shows and any error toast."""
    import time

    deadline = time.time() + timeout
    shown = ""
    while time.time() < deadline:
        shown = pg.locator(f"#{elem_id}").inner_text()
        if text in shown:
            return
        pg.wait_for_timeout(100)
    toasts = pg.locator(".toast-body").all_inner_texts()
    pytest.fail(f"#{elem_id} never showed {text!r}: it shows {shown!r}; messages: {toasts}")


def set_number(pg, elem_id: str, value) -> None:
    from playwright.sync_api import expect

    box = pg.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    expect(pg.locator(f"#{elem_id} input[type=range]")).to_have_value(str(value))  # the slider took it


def test_generate_shows_images_with_seeds_and_downloads_carry_settings(page, served):
    page.locator("#g_prompt textarea").fill("a green triangle")
    set_number(page, "g_steps", 6)
    set_number(page, "g_n", 2)
    page.locator("#g_go").click()
    wait_text(page, "g_status", "done")
    assert page.locator("#g_gallery img").count() == 2
    captions = page.locator("#g_gallery").inner_text()
    assert "seed 0" in captions and "seed 1" in captions
    links = page.locator("#g_files a")
    assert links.count() == 2
    body = page.request.get(links.first.get_attribute("href")).body()
    with Image.open(io.BytesIO(body)) as im:
        record = json.loads(im.text["genlab"])
        pixels = np.asarray(im)
    assert record["prompt"] == "a green triangle" and record["steps"] == 6 and record["seed"] in (0, 1)
    assert pixels.shape == (32, 32, 3)


def test_cancel_stops_a_long_job(page, served):
    _, app = served
    set_number(page, "g_steps", 64)
    set_number(page, "g_n", 8)
    page.locator("#g_go").click()
    wait_text(page, "g_status", "evaluation")
    page.locator("#g_cancel").click()
    wait_text(page, "g_status", "cancelled after")
    set_number(page, "g_steps", 16)
    set_number(page, "g_n", 4)
    assert app.jobs.counts() == {"running": 0, "waiting": 0}


def test_edit_uploads_an_image_and_a_mask(page, tmp_path):
    img, mask = tmp_path / "digit.png", tmp_path / "mask.png"
    Image.fromarray((np.indices((28, 28)).sum(0) * 4 % 256).astype(np.uint8)).save(img)
    m = np.zeros((28, 28), np.uint8)
    m[6:22, 6:22] = 255
    Image.fromarray(m).save(mask)
    page.get_by_role("tab", name="Edit").click()
    page.locator("#e_run input").click()
    page.locator("#e_run input").fill("digits")
    page.get_by_role("option", name="digits", exact=True).click()
    page.get_by_label("inpaint").check()
    page.locator("#e_image input[type=file]").set_input_files(str(img))
    page.locator("#e_mask input[type=file]").set_input_files(str(mask))
    set_number(page, "e_steps", 4)
    set_number(page, "e_n", 1)
    page.wait_for_selector("#e_mask img")
    page.locator("#e_go").click()
    wait_text(page, "e_status", "1 inpaint edit")
    page.wait_for_selector("#e_out img")
    assert "NFE" in page.locator("#e_status").inner_text()
