"""The operators' console in a real browser: headless Chromium signs in, searches a
citizen's number, opens a timeline, replays a dead letter; an unauthenticated visit, a
form without its CSRF token and a foreign session are refused. Every page the browser
shows is checked for a number or IIN in clear. `make console-shot` runs it with
GOVSMS_CONSOLE_SHOT set, and the search page is saved there (docs/console.png).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.browser import chromium, missing
from tests.support.gateway import wait_for
from tests.support.keys import KEY, SECRET
from tests.support.traces import CITIZEN, IIN, UNMASKED, made
from workers import audit, messages
from workers.console import operators
from workers.local.embedded import free_port

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))

NAME, PASSWORD = "aigerim", "correct horse battery staple"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def console(database_url, redis_client, tmp_path) -> Iterator[str]:
    """`govsms console` as `govsms run` starts it, on a port of its own: its address."""
    kwargs = redis_client.connection_pool.connection_kwargs
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GOVSMS_")},
           "PYTHONPATH": str(ROOT), "GOVSMS_DATA_DIR": str(tmp_path),
           "GOVSMS_DATABASE_URL": database_url,
           "GOVSMS_REDIS_URL": f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}",
           "GOVSMS_SECRET_KEY": KEY, "GOVSMS_BRIDGE_SECRET": SECRET,
           "GOVSMS_CONSOLE_PORT": str(port),
           "GOVSMS_DATABASE_TRANSACTION_POOLER":
               os.environ.get("GOVSMS_DATABASE_TRANSACTION_POOLER", "false"),
           "GOVSMS_OPERATORS": json.dumps({NAME: operators.hashed(NAME, PASSWORD)})}
    log = tmp_path / "console.log"
    process = subprocess.Popen([sys.executable, "-m", "workers.cli", "console"], env=env,
                               stdout=log.open("ab"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 30, "the console")
        yield base
    finally:
        process.terminate()
        process.wait(10)
    assert PASSWORD not in log.read_text()


def shown(driver) -> str:
    """The page the browser shows, which must not hold a number or IIN in clear."""
    page = driver.page_source
    assert UNMASKED.findall(page) == [] and IIN not in page, driver.current_url
    return page


def follow(driver, element) -> None:
    """Click `element` and wait for the page it leads to."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 15).until(expected_conditions.staleness_of(old))


def sign_in(driver, base: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/search")
    assert driver.current_url == f"{base}/signin"  # sent to sign in first
    driver.find_element(By.NAME, "name").send_keys(NAME)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    follow(driver, driver.find_element(By.CSS_SELECTOR, "form.stack button"))
    assert driver.current_url == f"{base}/" and "Status" in driver.title


def test_an_operator_finds_a_citizens_messages_and_replays_a_dead_letter(
        console, conn, database_url, redis_client):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    ids = made(conn, database_url)
    letter = messages.add_dead_letter(conn, task="govsms.answer", inbound_id=ids["not_found"],
                                      reason=f"TimeoutError for {CITIZEN}")
    with chromium() as driver:
        sign_in(driver, console)
        assert "dead letters not replayed" in shown(driver)
        # Search the citizen's number as they say it on the phone.
        follow(driver, driver.find_element(By.LINK_TEXT, "Search"))
        Select(driver.find_element(By.NAME, "kind")).select_by_value("phone")
        driver.find_element(By.NAME, "q").send_keys("8 701 999 00 01")
        follow(driver, driver.find_element(By.CSS_SELECTOR, "form.row button"))
        page = shown(driver)
        assert "phone +7701***0001" in page and "POSSIBLE DUPLICATE" in page
        for kind in ("answered", "delivered", "undeliverable", "dead", "replayed"):
            assert f"inbound {ids[kind]}</a>" in page, kind
        if os.environ.get("GOVSMS_CONSOLE_SHOT"):
            driver.save_screenshot(os.environ["GOVSMS_CONSOLE_SHOT"])
        # One timeline, opened from the results.
        follow(driver, driver.find_element(By.LINK_TEXT, f"inbound {ids['delivered']}"))
        assert "receipt delivered" in shown(driver)
        assert driver.current_url == f"{console}/messages/inbound/{ids['delivered']}"
        # The dead letter: listed, shown with its reason, replayed.
        driver.get(f"{console}/dead-letters")
        follow(driver, driver.find_element(By.LINK_TEXT, str(letter)))
        assert "TimeoutError for +7701***0001" in shown(driver)
        follow(driver, driver.find_element(By.XPATH, "//button[text()='Replay']"))
        assert "Replayed: queued again" in shown(driver)
        assert messages.open_dead_letters(conn) == 0 and redis_client.llen("inbound") == 1
        # A form sent without its CSRF token is refused, and changes nothing.
        messages.add_dead_letter(conn, task="govsms.answer", inbound_id=ids["answered"],
                                 reason="x")
        driver.get(f"{console}/dead-letters")
        form = driver.find_element(By.CSS_SELECTOR, "form[action='/dead-letters/replay-all']")
        driver.execute_script("arguments[0].querySelector('input[name=csrf]').remove()", form)
        follow(driver, form.find_element(By.TAG_NAME, "button"))
        assert "403 missing or wrong CSRF token" in driver.page_source
        assert messages.open_dead_letters(conn) == 1
        # A session that is not one the console opened is no session: back to the sign-in.
        driver.delete_all_cookies()
        driver.get(f"{console}/")
        driver.add_cookie({"name": "govsms_console", "value": "f" * 43})
        driver.get(f"{console}/dead-letters")
        assert driver.current_url == f"{console}/signin"
    actions = [e.action for e in audit.entries(conn)]
    assert {"sign_in", "search", "view", "replay"} <= set(actions)
