"""The result pages in headless Chromium: a readable list, a 1,500-member chord on a short page,
the dashboard. Screenshots go to artifacts/."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from taskqueue.models import ChordCounter, TaskResult
from tests.browser.test_pages import ARTIFACTS, browser  # noqa: F401  (the Chromium fixture)

pytestmark = [pytest.mark.any_broker, pytest.mark.any_database]


@pytest.fixture
def staff_page(browser, live_server, transactional_db, django_user_model, settings):  # noqa: F811
    import django.contrib.admin

    # No staticfiles app in the tests' settings: the live server serves the admin's CSS from here.
    settings.STATIC_ROOT = str(Path(django.contrib.admin.__file__).parent / "static")
    django_user_model.objects.create_superuser("admin", password="pw")
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/", timeout=10_000)
    yield page, live_server.url
    page.close()


def _big_chord(size: int) -> ChordCounter:
    now = timezone.now()
    members = [f"member-{index:04d}-{'f' * 24}" for index in range(size)]
    TaskResult.objects.bulk_create(
        TaskResult(task_id=task_id, task_name="tests.tasks.add", state="FAILURE" if index in (7, 900) else "SUCCESS",
                   group_id="big-chord", root_id="big-chord", queue="default" if index % 3 else "scoring",
                   date_created=now - timedelta(minutes=index % 50), date_started=now - timedelta(minutes=index % 50),
                   date_done=now - timedelta(minutes=index % 50, milliseconds=-(index % 900)))
        for index, task_id in enumerate(members))
    return ChordCounter.objects.create(group_id="big-chord", total=size, remaining=0, member_ids=members,
                                       body={"task": "tests.tasks.tsum", "args": [], "kwargs": {}},
                                       state="FAILURE", failed_task_id=members[7], body_sent=True)


def test_list_chord_and_dashboard_pages(staff_page):
    page, url = staff_page
    counter = _big_chord(1500)

    page.goto(f"{url}/admin/taskqueue/taskresult/")
    first_id = page.locator(".field-short_task_id code").first
    assert first_id.inner_text().endswith("…") and first_id.get_attribute("title").startswith("member-")
    assert page.locator("td.field-group_state").first.inner_text().startswith("chord FAILURE 1500/1500")
    page.screenshot(path=str(ARTIFACTS / "admin-results-list.png"))
    with page.expect_navigation(timeout=10_000):
        page.locator(".field-short_task_id a").first.click()
    assert page.locator(".field-created_ms .readonly").inner_text().endswith(" UTC")
    page.screenshot(path=str(ARTIFACTS / "admin-result-detail.png"), full_page=True)

    page.goto(f"{url}/admin/taskqueue/chordcounter/{counter.pk}/change/")
    assert "1,500 members" in page.locator("#members").inner_text()
    assert page.locator("#members tr[data-state]").count() == 100
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 6_000, height  # was 41,000 px
    page.screenshot(path=str(ARTIFACTS / "admin-chord-1500.png"), full_page=True)
    with page.expect_navigation(timeout=10_000):
        page.click("text=last »")
    assert page.locator("#members tr[data-state]").count() == 100 and "page 15 of 15" in page.content()

    page.goto(f"{url}/admin/")
    with page.expect_navigation(timeout=10_000):
        page.click("a[href='/admin/taskqueue/dashboard/']")
    assert page.locator("#tq-dashboard svg").count() == 2  # the two queues
    page.screenshot(path=str(ARTIFACTS / "admin-dashboard.png"), full_page=True)
