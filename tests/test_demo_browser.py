"""A real headless browser (Debian's chromium + chromedriver, driven by selenium) runs one selection through
the demo's page and saves a screenshot that must not be blank. Skipped only where chromium is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")

from PIL import Image  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from launchers import free_port  # noqa: E402
from tspo_sampler import example_video  # noqa: E402
from tspo_sampler.integrations.gradio_demo import build_demo, launch_demo  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver")

# Where to keep the screenshot (docs/assets/demo.png is made this way: TSPO_DEMO_SCREENSHOT=docs/assets/demo.png).
SCREENSHOT_ENV = "TSPO_DEMO_SCREENSHOT"


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1700", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_one_selection_through_the_page(uncached_sampler, browser, tmp_path):
    demo = build_demo(uncached_sampler)
    _, url, _ = launch_demo(demo, host="127.0.0.1", port=free_port(), block=False, quiet=True)
    try:
        browser.get(url)
        wait = WebDriverWait(browser, 120)
        upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
        upload.send_keys(str(example_video()))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "video")))
        question = browser.find_element(By.CSS_SELECTOR, "textarea")
        question.send_keys("When are there fireworks in the night sky?")
        button = next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Select frames")
        button.click()
        # Done when the JSON panel shows the chosen timestamps and both galleries hold their frames.
        wait.until(lambda d: "timestamps" in d.find_element(By.TAG_NAME, "body").text)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "img")) >= 12)
        shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "demo.png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(shot))
    finally:
        demo.close()
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.shape[0] > 500 and pixels.shape[1] > 800
    assert pixels.std() > 20  # not one flat colour
    colours = len(np.unique(pixels[::4, ::4].reshape(-1, 3), axis=0))
    assert colours > 200, colours  # frames of the video are on the page, not only text
