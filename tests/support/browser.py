"""A real browser for the pages' tests: Debian's headless Chromium, driven through its own
chromedriver by Selenium (no driver downloaded: `deploy/ensure-peers` installs both)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver"


def _found(paths: tuple[str, ...]) -> str | None:
    return next((p for p in paths if os.access(p, os.X_OK)), None)


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if _found(CHROMIUM) is None or not os.access(CHROMEDRIVER, os.X_OK):
        return ("Chromium and its driver are not installed (Debian's chromium and "
                "chromium-driver): run deploy/ensure-peers, as `make test` does")
    return None


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator:
    """A headless Chromium session, closed at the end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _found(CHROMIUM) or CHROMIUM[0]
    for flag in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-extensions", "--lang=en-US",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    if os.geteuid() == 0:  # Chromium's sandbox refuses root (a container's CI)
        options.add_argument("--no-sandbox")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager go fetching
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")
                                                               or CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
