"""A real browser through the local stack: headless Chromium signs in at the
ALB1 test stand-in, uses the backend's page and signs out.

Debian's `chromium` and `chromium-driver`, driven by selenium. The stack is
scripts/stack.sh with the stand-in in front (testkit/alb1), the backend
running with ALB_ARN set; nothing is mocked between the browser and moto.
On failure the screenshot, the page's HTML and its console log are saved
beside the stack's logs (the directory is named in the failure).
"""
import json
import os
import shutil
import sys
import tempfile
import uuid

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The stack helper lives beside the other end-to-end tests (and puts testkit/ on the path).
sys.path.insert(0, os.path.join(ROOT, "testkit", "e2e"))
import standin_stack  # noqa: E402
from alb1.client import machine_token  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT_SECS = 15
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900"]


def browser_stack(**settings):
    """A stack for a browser test module, its logs beside the evidence of failures (see the module doc)."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        assert shutil.which(path), f"{path} is missing: apt-get install -y {package}"
    base = os.environ.get("PLANB_TEST_LOGS") or tempfile.mkdtemp(prefix="planb-browser-")
    run = os.path.join(base, f"browser-{uuid.uuid4().hex[:8]}")
    os.makedirs(run)
    info = standin_stack.up(run, **settings)
    try:
        yield info
    finally:
        standin_stack.down(info)


@pytest.fixture(scope="module")
def stack():
    yield from browser_stack()


@pytest.fixture
def browser(stack, request):
    profile = tempfile.mkdtemp(prefix="planb-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=os.path.join(stack["run"], "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT_SECS)
    try:
        yield driver
        call = getattr(request.node, "report_call", None)
        if call is None or call.failed:
            save_evidence(driver, stack["run"], request.node.name)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def save_evidence(driver, run, name):
    """Screenshot, HTML and console log of the page, saved under `run` beside the stack's logs."""
    prefix = os.path.join(run, name)
    try:
        driver.save_screenshot(f"{prefix}.png")
        with open(f"{prefix}.html", "w") as f:
            f.write(f"<!-- {driver.current_url} -->\n{driver.page_source}")
        with open(f"{prefix}.console.json", "w") as f:
            json.dump(driver.get_log("browser"), f, indent=1)
    except WebDriverException as e:
        print(f"could not save the page's evidence: {e}")
    print(f"browser evidence and the stack's logs: {run}")


def wait(driver, what, condition):
    return WebDriverWait(driver, WAIT_SECS).until(condition, message=f"waiting for {what} at {driver.current_url}")


def at_login_form(driver):
    wait(driver, "the login form", lambda d: d.find_elements(By.ID, "username"))


def sign_in(driver, stack, user):
    driver.get(f"{stack['alb']}/")
    at_login_form(driver)
    assert driver.current_url.startswith(f"{stack['cognito']}/login"), driver.current_url
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(stack[user]["password"])
    driver.find_element(By.ID, "signin").click()
    wait(driver, f"the page to show {user}", lambda d: d.find_element(By.ID, "who").text == user)
    wait(driver, "the notes to load", lambda d: d.find_element(By.ID, "notes").get_attribute("data-state") == "loaded")
    assert driver.current_url == f"{stack['alb']}/"


def note_texts(driver):
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#notes li.note .text")]


def add_note(driver, text):
    driver.find_element(By.ID, "new-note").send_keys(text)
    driver.find_element(By.ID, "add").click()
    wait(driver, "the new note in the list", lambda d: text in note_texts(d))


def sign_out(driver, stack):
    driver.find_element(By.ID, "signout").click()
    # The backend's /logout, the Cognito domain's /logout, back to ALB1's / and so to the login.
    at_login_form(driver)


def page_fetch(driver, path, headers=None):
    """(status, body) of a fetch() the page itself makes, without its cookies."""
    return driver.execute_async_script(
        """const [path, headers, done] = arguments;
        fetch(path, {headers, credentials: "omit"})
          .then(async (r) => done([r.status, await r.text()]), (e) => done([0, String(e)]));""",
        path, headers or {})


def csp_violations(driver):
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


def test_alice_and_bob_sign_in_keep_their_own_notes_and_sign_out(browser, stack):
    note = f"from the browser {uuid.uuid4().hex[:8]} <b>not markup</b>"
    sign_in(browser, stack, "alice")
    assert browser.find_element(By.ID, "kind").text == "user"
    add_note(browser, note)
    browser.refresh()
    wait(browser, "the note after a reload", lambda d: note in note_texts(d))
    assert not browser.find_elements(By.CSS_SELECTOR, "#notes b"), "a note's text is never markup"
    assert not csp_violations(browser)

    sign_out(browser, stack)
    browser.get(f"{stack['alb']}/api/me")
    assert "401" in browser.find_element(By.TAG_NAME, "body").text, "after sign-out /api/me is 401"
    browser.get(f"{stack['alb']}/")
    at_login_form(browser)

    sign_in(browser, stack, "bob")
    assert note not in note_texts(browser), "bob sees none of alice's notes"
    sign_out(browser, stack)


def test_a_machine_clients_token_is_a_machine_at_the_api(browser, stack):
    m = stack["machine"]
    token = machine_token(stack["cognito"], m["client_id"], m["client_secret"])
    browser.get(f"{stack['alb']}/api/me")  # any page of ALB1's origin: the 401 page will do
    status, body = page_fetch(browser, "/api/me", {"Authorization": f"Bearer {token}"})
    assert status == 200, body
    me = json.loads(body)
    assert (me["kind"], me["sub"], me["client_id"]) == ("machine", m["client_id"], m["client_id"])
    status, _ = page_fetch(browser, "/api/me", {"Authorization": f"Bearer {token[:-2]}xx"})
    assert status == 401
