"""Revoke from the admin and say truthfully, per task, what happened (green only for what did)."""

from __future__ import annotations

from django.contrib import messages

from .. import operations

_SAID = {
    operations.REVOKED: (messages.SUCCESS, "revoked (it was waiting: it will not run)"),
    operations.TERMINATED: (messages.SUCCESS, "terminated (it was running and was stopped)"),
    operations.RUNNING: (messages.WARNING, "marked revoked, but a worker already had it: if it started, it runs to "
                                           "its end (use \u201cRevoke and terminate\u201d to stop it)"),
    operations.UNSTOPPABLE: (messages.WARNING, "marked revoked, but its worker runs tasks in threads, which cannot "
                                               "be stopped: it runs to its end"),
    operations.NOT_STOPPED: (messages.ERROR, "terminate asked, but its worker has not stopped it yet"),
    operations.FINISHED: (messages.INFO, "already finished: nothing to do"),
}


def report_revoke(model_admin, request, task_ids: list[str], terminate: bool) -> dict[str, str]:
    """Revoke `task_ids` and tell the user one line per outcome, listing the ids it concerns."""
    report = operations.revoke_and_report(task_ids, terminate=terminate)
    by_outcome: dict[str, list[str]] = {}
    for task_id, outcome in report.items():
        by_outcome.setdefault(outcome, []).append(task_id)
    for outcome, ids in by_outcome.items():
        level, text = _SAID[outcome]
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        model_admin.message_user(request, f"{len(ids)} task(s) {text}: {shown}", level)
    return report
