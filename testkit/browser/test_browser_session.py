"""The page when ALB1 ends the session: headless Chromium through a stack whose ALB1 stand-in
keeps sessions for a few seconds only (ALB1_SESSION_TIMEOUT, the authenticate actions'
SessionTimeout), so the session really expires at the stand-in, as a deployed one does
after infra's timeout; no cookie is deleted by the test.

AWS's documents differ on what the page then meets on the API (401 under `deny`, or a
redirect to the login), so the page is shown each: the expired session's 401, the
default rule's redirect to the login, and a request that fails outright.
"""
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from test_browser import browser, browser_stack, sign_in, wait  # noqa: F401 (browser is a fixture)

# Long enough for the sign-in and the page's first calls on a busy machine, short enough to wait out.
SESSION_SECS = 8


@pytest.fixture(scope="module")
def stack():
    yield from browser_stack(ALB1_SESSION_TIMEOUT=SESSION_SECS)


def api_status(driver, path):
    """The page's own `api()` call (app.js) on `path`: [status, signedOut]."""
    return driver.execute_async_script(
        """const [path, done] = arguments;
        api("GET", path).then((a) => done([a.status, a.signedOut]), (e) => done([-1, String(e)]));""", path)


def notice(driver):
    """The signed-out notice's `data-how`, or None while it is hidden."""
    section = driver.find_element(By.ID, "signed-out")
    return section.get_attribute("data-how") if section.is_displayed() else None


def test_an_expired_session_shows_the_signed_out_notice_and_signing_in_again_works(browser, stack):
    started = time.monotonic()  # the session starts later, during the sign-in
    sign_in(browser, stack, "bob")
    # The page's own session, asked until the stand-in has ended it (its timeout is the signal).
    WebDriverWait(browser, SESSION_SECS + 20, poll_frequency=0.5).until(
        lambda d: api_status(d, "/api/me") == [401, "401"], message="the session to expire at ALB1")
    assert time.monotonic() - started >= SESSION_SECS - 0.5, "the session ended before its timeout"
    assert browser.find_element(By.ID, "signed-in").is_displayed(), "nothing told the page yet"

    browser.find_element(By.ID, "new-note").send_keys("after the session ended")
    browser.find_element(By.ID, "add").click()
    wait(browser, "the signed-out notice", lambda d: notice(d) == "401")
    assert not browser.find_element(By.ID, "signed-in").is_displayed()

    # Without a session, ALB1's other answers the page may meet: the default rule's redirect to
    # the login (`authenticate`), and a request that cannot complete (the page's CSP allows its
    # own origin only); either is the same notice.
    for path, how in [("/signed-out-probe", "redirect"), ("http://127.0.0.1:9/api/me", "failed")]:
        assert api_status(browser, path) == [0, how]
        browser.execute_async_script(
            """const [path, done] = arguments;
            api("GET", path).then((a) => { ok("Probing", a, 200); done(); });""", path)
        wait(browser, f"the signed-out notice ({how})", lambda d, how=how: notice(d) == how)

    link = browser.find_element(By.ID, "signin")
    assert link.get_attribute("href") == f"{stack['alb']}/"
    link.click()
    # The Cognito domain still has bob signed in (its own cookie): straight back, a new session.
    wait(browser, "the page to show bob", lambda d: d.find_elements(By.ID, "who") and d.find_element(By.ID, "who").text == "bob")
