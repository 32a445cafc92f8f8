"""The operations console in a real browser: Debian's chromium, headless, driven by Selenium.

A real `rempart serve` runs as a subprocess on a free port with a temporary data directory;
decisions and reports go through the real wforce API over HTTP.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rempart.process import ServeProcess
from tests.conftest import need

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORD = "browser-test-password"
REMPART = (sys.executable, "-c", "from rempart.cli import main; main()")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)


class Server(ServeProcess):
    """`rempart serve --port 0` in a subprocess, its configuration in the data directory."""

    def __init__(self, data_dir: Path, config: str = "") -> None:
        body = "[journal]\nflush_interval = 0.02\n" + config
        super().__init__(data_dir, body, PASSWORD, config_path=data_dir / "rempart.toml")
        self.start()

    def api(self, command: str, body: dict[str, object]) -> dict[str, object]:
        token = base64.b64encode(f"dovecot:{PASSWORD}".encode()).decode()
        req = urllib.request.Request(
            f"{self.base}/?command={command}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())


def _browser_available() -> tuple[bool, str]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return False, "install Debian's chromium and chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False, "pip install selenium (the 'test' extra)"
    return True, ""


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(Path(tmp))
        try:
            yield srv
        finally:
            srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    ok, why = _browser_available()
    need("browser", ok, why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    profile = tempfile.mkdtemp(prefix="rempart-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # element not there yet
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def sign_in(driver, server: Server, operator: str = "admin", password: str = PASSWORD) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(server.base + "/ops/login")
    field = driver.find_element(By.ID, "operator")
    field.clear()
    field.send_keys(operator)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "signin").click()
    wait_for(
        lambda: (
            driver.current_url.endswith("/ops/")
            or driver.find_elements(By.CSS_SELECTOR, ".alert.bad")
        ),
        what="the sign-in answer",
    )


def csp_violations(driver) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]
    ]


def test_wrong_password_is_refused(browser, server: Server) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    sign_in(browser, server, password="not-the-password")
    alert = browser.find_element(By.CSS_SELECTOR, ".alert.bad").text
    assert "Wrong operator name or password" in alert
    assert browser.current_url.endswith("/ops/login")
    assert not any(c["name"] == "rempart_session" for c in browser.get_cookies())
    browser.get(server.base + "/ops/")
    assert "/ops/login" in browser.current_url  # still not signed in


def test_reports_show_on_live_chart_without_reload(browser, server: Server) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    sign_in(browser, server)
    assert browser.current_url.endswith("/ops/")
    session = next(c for c in browser.get_cookies() if c["name"] == "rempart_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    wait_for(lambda: browser.find_element(By.ID, "live").text == "live", what="live stream")
    browser.execute_script("window.__notReloaded = 42;")
    for i in range(30):
        server.api(
            "report",
            {
                "login": f"user{i}@example.org",
                "remote": "198.51.100.77",
                "pwhash": "ab",
                "protocol": "imap",
                "success": False,
            },
        )

    def imap_count() -> int:
        item = browser.find_element(
            By.CSS_SELECTOR, '#chart-protocols .legend [data-series="imap"]'
        )
        return int(item.get_attribute("data-count"))

    assert wait_for(lambda: imap_count() >= 30, timeout=8, what="imap reports on the chart")
    assert browser.execute_script("return window.__notReloaded") == 42
    line = browser.find_element(By.CSS_SELECTOR, '#chart-protocols polyline[data-series="imap"]')
    assert line.get_attribute("points")
    top = wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, "#top-ips tbody tr td a").text,
        what="top source",
    )
    assert top == "198.51.100.77"
    assert csp_violations(browser) == []


def test_block_entry_added_in_ui_refuses_next_allow(browser, server: Server) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    attempt = {
        "login": "carol@example.org",
        "remote": "203.0.113.9",
        "pwhash": "cd",
        "protocol": "imap",
    }
    assert server.api("allow", attempt)["status"] == 0
    sign_in(browser, server)
    Select(browser.find_element(By.ID, "entry-list")).select_by_value("block")
    Select(browser.find_element(By.ID, "entry-kind")).select_by_value("ip")
    browser.find_element(By.ID, "entry-value").send_keys("203.0.113.9")
    browser.find_element(By.ID, "entry-expires").send_keys("2h")
    browser.find_element(By.ID, "entry-reason").send_keys("password spraying seen on IMAP")
    browser.find_element(By.ID, "entry-add").click()
    done = wait_for(lambda: browser.find_elements(By.ID, "done"), what="the confirmation")
    assert "Block entry added" in done[0].text
    assert "203.0.113.9" in browser.find_element(By.ID, "entries").text
    answer = server.api("allow", attempt)
    assert answer["status"] == -1

    def journal() -> str:
        return subprocess.run(
            [*REMPART, "journal", "--data-dir", str(server.data_dir), "--kind", "list_add"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    text = wait_for(lambda: "operator:admin" in journal() and journal(), what="journaled entry")
    assert '"by": "operator:admin"' in text and "password spraying" in text


def test_forged_csrf_token_is_refused(browser, server: Server) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    sign_in(browser, server)
    browser.execute_script(
        "document.querySelector('#add-entry input[name=csrf]').value = 'forged-token';"
    )
    browser.find_element(By.ID, "entry-value").send_keys("192.0.2.66")
    browser.find_element(By.ID, "entry-reason").send_keys("should not happen")
    browser.find_element(By.ID, "entry-add").click()
    error = wait_for(
        lambda: browser.find_elements(By.ID, "error"), what="the refusal page after the post"
    )
    assert "CSRF" in error[0].text
    entries = server.api("getBL", {})
    assert "192.0.2.66" not in json.dumps(entries)
    attempt = {
        "login": "dave@example.org",
        "remote": "192.0.2.66",
        "pwhash": "ef",
        "protocol": "imap",
    }
    assert server.api("allow", attempt)["status"] == 0


def test_posture_change_needs_reason_and_shows_on_status_page(browser, server: Server) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server)
    row = browser.find_element(By.CSS_SELECTOR, "#posture form:first-of-type")
    Select(row.find_element(By.NAME, "level")).select_by_value("strict")
    row.find_element(By.CSS_SELECTOR, "input[name=hold][value=hold]").click()
    browser.execute_script(
        "arguments[0].removeAttribute('required')", row.find_element(By.NAME, "reason")
    )
    row.find_element(By.TAG_NAME, "button").click()
    error = wait_for(lambda: browser.find_elements(By.ID, "error"), what="the refusal")
    assert "reason is required" in error[0].text
    browser.get(server.base + "/ops/")
    row = browser.find_element(By.CSS_SELECTOR, "#posture form:first-of-type")
    Select(row.find_element(By.NAME, "level")).select_by_value("strict")
    row.find_element(By.NAME, "reason").send_keys("credential stuffing on IMAP")
    row.find_element(By.TAG_NAME, "button").click()  # hold or hand back not chosen yet
    assert browser.find_elements(By.ID, "posture-imap")[0].text == "normal"
    assert not browser.find_elements(By.ID, "error")  # the browser asked for the choice
    row.find_element(By.CSS_SELECTOR, "input[name=hold][value=hold]").click()
    row.find_element(By.NAME, "ttl").send_keys("2h")
    row.find_element(By.TAG_NAME, "button").click()
    wait_for(
        lambda: browser.find_element(By.ID, "posture-imap").text == "strict",
        what="the new posture on the dashboard",
    )
    assert browser.find_element(By.ID, "posture-imap-by").text == "admin"
    assert browser.find_element(By.ID, "posture-imap-reason").text == "credential stuffing on IMAP"
    assert browser.find_element(By.ID, "posture-imap-until").text.endswith("Z")
    assert browser.find_element(By.ID, "posture-imap-detector").text == "paused (operator hold)"
    browser.get(server.base + "/status")
    imap = browser.find_element(By.ID, "svc-imap").text
    assert "new devices must first sign in on the website" in imap

    # Ending the incident hands IMAP back to the detector, which the panel shows as active.
    browser.get(server.base + "/ops/")
    row = browser.find_element(By.CSS_SELECTOR, "#posture-row-imap form")
    Select(row.find_element(By.NAME, "level")).select_by_value("normal")
    row.find_element(By.CSS_SELECTOR, "input[name=hold][value=hand-back]").click()
    row.find_element(By.NAME, "reason").send_keys("wave over")
    row.find_element(By.TAG_NAME, "button").click()
    wait_for(
        lambda: browser.find_element(By.ID, "posture-imap").text == "normal",
        what="the handed-back posture",
    )
    assert browser.find_element(By.ID, "posture-imap-detector").text == "active"
    assert browser.find_element(By.ID, "posture-imap-until").text == "the detector decides"


def test_status_page_shows_posted_notice_on_a_phone(browser, server: Server) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    text = "Mail apps on new devices must first sign in on the website. Type our address yourself."
    posted = subprocess.run(
        [
            *REMPART,
            "status",
            "post",
            "--data-dir",
            str(server.data_dir),
            "--service",
            "pop3",
            "--level",
            "restricted",
            text,
        ],
        capture_output=True,
        text=True,
    )
    assert posted.returncode == 0, posted.stderr
    refused = subprocess.run(
        [
            *REMPART,
            "status",
            "post",
            "--data-dir",
            str(server.data_dir),
            "--service",
            "web",
            "--level",
            "down",
            "Click here to reset your password: https://evil.example/",
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "no links" in refused.stderr
    browser.set_window_size(390, 844)
    try:
        browser.delete_all_cookies()
        browser.get(server.base + "/status")
        pop3 = browser.find_element(By.ID, "svc-pop3")
        assert text in pop3.text and "up, with restrictions" in pop3.text
        assert "evil.example" not in browser.page_source
        assert text in browser.find_element(By.CSS_SELECTOR, "ul.history").text
        width = browser.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert width[0] <= width[1], f"horizontal scroll on a phone: {width}"
        assert browser.find_elements(By.TAG_NAME, "script") == []
    finally:
        browser.set_window_size(1400, 1000)


def test_journal_timeline_one_click_from_top_source(browser, server: Server) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    server.api(
        "report",
        {
            "login": "erin@example.org",
            "remote": "198.51.100.88",
            "pwhash": "aa",
            "protocol": "pop3",
            "success": False,
        },
    )
    sign_in(browser, server)
    # The table is rebuilt every second, so find the link and follow it in one script call.
    clicked = wait_for(
        lambda: browser.execute_script(
            "const a = [...document.querySelectorAll('#top-ips a')]"
            ".find(x => x.textContent === '198.51.100.88'); if (a) { a.click(); return true; }"
            " return false;"
        ),
        what="top source link",
    )
    assert clicked
    rows = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#journal-results tbody tr td:nth-child(5)"),
        what="journal rows",
    )
    assert rows and all(r.text == "198.51.100.88" for r in rows)
    browser.get(server.base + "/ops/journal?ip=not-an-ip")
    assert "bad search" in browser.find_element(By.ID, "error").text
