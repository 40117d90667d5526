"""The new-device-login workflow of the talk: check_device → (notify_user | save_login_event)
→ post_to_risk_api → post_process, with retries on the external call and error callbacks at
task, group and chain level."""

import json
import urllib.error
import urllib.request

from django.conf import settings

from taskqueue import chain, get_task_logger, group, task

from .models import Device, Login, RiskVerdict, WorkflowError

logger = get_task_logger(__name__)


class RiskApiError(Exception):
    """The risk API answered with an error or did not answer in time."""


@task
def check_device(login_id):
    login = Login.objects.get(pk=login_id)
    _, created = Device.objects.get_or_create(user=login.user, name=login.device)
    Login.objects.filter(pk=login_id).update(new_device=created)
    return {"login_id": login_id, "user": login.user, "device": login.device, "new_device": created}


@task
def notify_user(info):
    if info["new_device"]:
        logger.info("Telling %s about a login from a new device: %s", info["user"], info["device"])
        Login.objects.filter(pk=info["login_id"]).update(notified=True)
    return {"login_id": info["login_id"], "notified": info["new_device"]}


@task
def save_login_event(info):
    Login.objects.filter(pk=info["login_id"]).update(event_saved=True)
    return {"login_id": info["login_id"], "saved": True, "new_device": info["new_device"]}


@task(bind=True, autoretry_for=(RiskApiError,), retry_backoff=True, retry_jitter=False, max_retries=3)
def post_to_risk_api(self, results):
    login_id = results[0]["login_id"]
    payload = json.dumps({"login_id": login_id, "new_device": results[1]["new_device"]}).encode()
    request = urllib.request.Request(settings.DEMO_RISK_API_URL, data=payload,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=settings.DEMO_RISK_API_TIMEOUT) as response:
            body = json.load(response)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise RiskApiError(f"risk API failed (attempt {self.request.retries + 1}): {exc}") from None
    return {"login_id": login_id, **body}


@task
def post_process(response):
    verdict, _ = RiskVerdict.objects.update_or_create(
        login_id=response["login_id"], defaults={"verdict": response["verdict"], "score": response["score"]})
    return f"{verdict.verdict} ({verdict.score:.2f})"


@task
def record_error(task_id, login_id, level):
    """Error callback: called with the failed task's id (the partial args follow)."""
    WorkflowError.objects.create(login_id=login_id, level=level, task_id=task_id)


def start_workflow(login: Login):
    """Build and send the workflow for one login; store its step ids for the status page."""
    workflow = chain(
        check_device.s(login.pk).on_error(record_error.s(login.pk, "task")),
        group(notify_user.s(), save_login_event.s()).on_error(record_error.s(login.pk, "group")),
        post_to_risk_api.s(),
        post_process.s(),
    ).on_error(record_error.s(login.pk, "chain"))
    result = workflow.freeze()
    risk = result.parent
    parallel = risk.parent
    check = parallel.parent
    login.steps = [["check_device", check.id], ["notify_user", parallel.results[0].id],
                   ["save_login_event", parallel.results[1].id], ["post_to_risk_api", risk.id],
                   ["post_process", result.id]]
    login.save(update_fields=["steps"])
    workflow.apply_async()
    return result
