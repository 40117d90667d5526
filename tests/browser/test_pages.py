"""The demo's pages in real headless Chromium (Debian's package, driven by Playwright)."""

import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from demo_project.logins.models import RiskApiControl
from taskqueue.testing import start_worker

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
# The pages in a browser: the demo's stories are run on every broker and database by tests/e2e/test_demo.py.
pytestmark = [pytest.mark.any_broker, pytest.mark.any_database]


def _browser_available() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return shutil.which(CHROMIUM) is not None


@pytest.fixture(scope="module")
def browser():
    if not _browser_available():
        if os.environ.get("TASKQUEUE_REQUIRE_BROWSER"):
            pytest.fail("Chromium or Playwright is missing and TASKQUEUE_REQUIRE_BROWSER is set")
        pytest.skip("needs /usr/bin/chromium and the playwright package")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are still sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield instance
        instance.close()


@pytest.fixture
def site(live_server, transactional_db, broker_url):
    worker = start_worker("-c", "4", "-Q", "demo-logins,scoring",
                          env={"DEMO_RISK_API_URL": f"{live_server.url}/risk-api/score"})
    ARTIFACTS.mkdir(exist_ok=True)
    get_user_model().objects.create_user("alice", password="alice-pw", is_staff=True)
    yield live_server.url
    worker.terminate()


def log_in_to_admin(browser, site: str, username: str, password: str, next_path: str = "",
                    viewport: dict | None = None):
    """A new page, logged into the admin through its form, at `next_path` (the admin's index if
    empty); the caller waits for what it expects there."""
    page = browser.new_page(viewport=viewport) if viewport else browser.new_page()
    page.goto(f"{site}/admin/login/" + (f"?next={next_path}" if next_path else ""))
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    return page


def _open_logged_in(browser, site: str, path: str):
    """A new page at `path`, through the login form it is sent to first."""
    page = browser.new_page()
    page.goto(f"{site}{path}")
    assert page.url == f"{site}/accounts/login/?next={path}"
    page.screenshot(path=str(ARTIFACTS / "demo-login.png"))
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-pw")
    page.click("#login-submit")
    page.wait_for_url(f"{site}{path}", timeout=10_000)
    return page


def test_orders_fill_their_progress_bars(browser, site):
    page = _open_logged_in(browser, site, "/payments/")
    page.fill("#seconds", "1")
    for customer in ("ana", "bob", "chen", "ana"):
        page.click(f"button[data-customer={customer}]")
    page.wait_for_function("document.querySelectorAll('tr[data-order]').length === 4", timeout=10_000)
    page.wait_for_function(
        "[...document.querySelectorAll('tr[data-order] progress')].every(bar => bar.value === 100)",
        timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "payments.png"), full_page=True)
    assert page.locator("tr[data-order] .score").count() == 4
    page.wait_for_function("document.body.dataset.polling === 'off'", timeout=5_000)  # all final: no more polling
    page.close()


def test_a_refused_order_shows_its_reason_and_polling_stops(browser, site):
    page = _open_logged_in(browser, site, "/payments/")
    polled: list[str] = []
    page.on("request", lambda request: polled.append(request.url) if "/api/orders/" in request.url else None)
    page.fill("#seconds", "600")
    page.click("button[data-customer=ana]")
    page.wait_for_selector("#message:not([hidden])", timeout=10_000)
    assert page.inner_text("#message") == ("Order refused (400): seconds: Ensure this value is less than or "
                                           "equal to 60.")
    assert page.locator("tr[data-order]").count() == 0 and page.get_attribute("body", "data-polling") == "off"
    page.set_viewport_size({"width": 390, "height": 700})  # a phone: the page still fits
    page.screenshot(path=str(ARTIFACTS / "payments-refused-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.fill("#seconds", "0.2")
    page.click("button[data-customer=bob]")
    page.wait_for_function("document.querySelector('tr[data-order] .state')?.textContent === 'SUCCESS'",
                           timeout=20_000)
    page.wait_for_function("document.body.dataset.polling === 'off'", timeout=5_000)
    assert page.is_hidden("#message")
    polls = len(polled)
    page.wait_for_timeout(1200)  # more than two polling intervals: a final row is not asked again
    assert len(polled) == polls, polled[polls:]
    assert not any("undefined" in url for url in polled), polled
    assert "undefined" not in page.inner_text("body")
    page.close()


def test_login_workflow_page_shows_each_step(browser, site):
    RiskApiControl.objects.create(pk=1)
    page = _open_logged_in(browser, site, "/logins/")
    page.fill("input[name=device]", "browser-tab")
    page.click("#login-button")
    page.wait_for_function(
        "document.querySelector('tr[data-login] .steps') && "
        "document.querySelector('tr[data-login] .steps').textContent.split('SUCCESS').length - 1 === 5",
        timeout=30_000)
    page.wait_for_function("document.body.dataset.polling === 'off'", timeout=10_000)  # final: polling stopped
    page.screenshot(path=str(ARTIFACTS / "logins.png"), full_page=True)
    assert page.locator("tr[data-login] .verdict").inner_text() in ("low", "high")
    assert page.locator("tr[data-login] .steps a").count() == 5  # each step links to its admin page
    page.close()
