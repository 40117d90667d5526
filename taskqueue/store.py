"""The one owner of result rows: TaskResult, GroupResult and ChordCounter are written and read here
(the hand-tuned statements in `hotsql`, the codecs in `codecs`). Every write of a task's state is
followed by a notification to its waiters.

Importable before Django's app registry is ready (`import taskqueue` imports it): the models are
looked up when first needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction
from django.db.models import Count
from django.utils import timezone

from . import hotsql, notify, serialization, states
from .codecs import Outcome, encode_value, exception_to_json, is_result, notices
from .message import Message

if TYPE_CHECKING:
    from types import ModuleType

    from .request import Request

_FINAL_FIELDS = ["task_name", "state", "args", "kwargs", "result", "traceback", "meta", "retries", "queue",
                 "worker", "parent_id", "root_id", "group_id", "date_started", "date_done"]
_IN_BATCH = 500  # ids per IN (...) query, under SQLite's parameter limit
Wake = tuple[list[str], dict[str, bytes], set[str]]  # what `notify.publish` takes


def _models() -> ModuleType:  # the models module (Any attributes to a type checker)
    from . import models  # waits for Django's app registry: `import taskqueue` comes first

    return models


# -- task rows ---------------------------------------------------------------------------------

def _row(message: Message, state: str, **values: Any) -> dict[str, Any]:
    return hotsql.new_row(
        task_id=message.id, task_name=message.task, state=state,
        args=serialization.to_jsonable(list(message.args)), kwargs=serialization.to_jsonable(message.kwargs),
        queue=message.queue, parent_id=message.parent_id, root_id=message.root_id or message.id,
        group_id=message.group_id, retries=message.retries, **values)


def record_queued(task_id: str, task_name: str, args: list, kwargs: dict, queue: str) -> None:
    """A PENDING row for a task as it is enqueued (the django.tasks backend: its results exist
    from the enqueue on); a worker's outcome overwrites it."""
    hotsql.upsert([hotsql.new_row(task_id=task_id, task_name=task_name, root_id=task_id, queue=queue,
                                  args=serialization.to_jsonable(args), kwargs=serialization.to_jsonable(kwargs))],
                  [])


def mark_started(message: Message, hostname: str, started) -> None:
    hotsql.upsert([_row(message, states.STARTED, worker=hostname, date_started=started)], _FINAL_FIELDS,
                  over_finished=False)  # a duplicate delivery starting late never hides a finished result
    notify.publish([message.id], finished=set())


def outcome_row(out: Outcome) -> dict[str, Any] | None:
    """The row an outcome is stored as (None for a success whose result is ignored)."""
    if out.message.ignore_result and out.state == states.SUCCESS:
        return None
    if out.state in states.EXCEPTION_STATES and isinstance(out.result, BaseException):
        result = exception_to_json(out.result)
    elif out.encoded is not None:
        result = out.encoded
    else:
        result = encode_value(out.result)
    row = _row(out.message, out.state, result=result, traceback=out.traceback, worker=out.hostname,
               date_started=out.started, date_done=timezone.now() if out.state in states.READY_STATES else None)
    if out.retries is not None:
        row["retries"] = out.retries
    if out.state == states.SUCCESS and is_result(out.result):  # collect() follows it, as Celery its children
        row["meta"] = {"returned": result}
    return row


def _upsert_outcomes(outcomes: list[Outcome], notify_channel: str | None = None) -> list[dict[str, Any]]:
    """One statement for all the outcomes' rows (with `notify_channel`, notifying their waiters with
    the outcomes small enough to ride along); returns the rows written."""
    rows = [row for row in map(outcome_row, outcomes) if row is not None]
    if rows:
        hotsql.upsert(rows, _FINAL_FIELDS, notify_channel=notify_channel,
                      notices=notices(rows) if notify_channel is not None else None)
    return rows


def save_outcomes(outcomes: list[Outcome], publish: bool = True) -> Wake:
    """Store many outcomes in one statement (the worker's batch write), then wake their waiters
    (with publish=False, return what `notify.publish` needs; nothing if the write notified)."""
    rows = _upsert_outcomes(outcomes, channel := notify.postgres_channel())
    if not rows or channel is not None:
        return [], {}, set()
    finished = {row["task_id"] for row in rows if row["state"] in states.READY_STATES}
    wake = [row["task_id"] for row in rows], notices(rows), finished
    if publish:
        notify.publish(*wake)
    return wake


def save_failures(task_ids: list[str], exc: BaseException, traceback: str, names: dict[str, str]) -> None:
    """Store FAILURE for tasks that will never run (later steps of a failed chain or chord)."""
    if not task_ids:
        return
    now = timezone.now()
    rows = [hotsql.new_row(task_id=task_id, task_name=names.get(task_id, ""), state=states.FAILURE,
                           result=exception_to_json(exc), traceback=traceback, date_done=now)
            for task_id in task_ids]
    hotsql.upsert(rows, ["task_name", "state", "result", "traceback", "date_done"])
    notify.publish(task_ids)


def save_state(task_id: str, state: str, meta: Any, request: Request | None = None) -> None:
    """A custom state from update_state(): kept in `meta`, shown as AsyncResult.info."""
    encoded = serialization.to_jsonable(meta, "meta")
    row = hotsql.new_row(task_id=task_id, state=state, meta=encoded, date_started=timezone.now())
    fields = ["state", "meta"]
    if request is not None and request.id == task_id:
        row.update(task_name=request.task or "", queue=request.queue or "", worker=request.hostname or "",
                   parent_id=request.parent_id, root_id=request.root_id, group_id=request.group_id,
                   retries=request.retries)
        fields += ["task_name", "queue", "worker", "parent_id", "root_id", "group_id", "retries"]
    hotsql.upsert([row], fields)
    notify.publish([task_id], finished=set())


REVOKED_BY_CALL = "revoked"  # the reason a row gets from revoke(): not stopped, not expired


def mark_revoked(task_ids: list[str], reason: str = REVOKED_BY_CALL) -> list[str]:
    """Record revocation for ids not finished yet; returns those ids."""
    done = set(_models().TaskResult.objects.filter(task_id__in=task_ids, state__in=states.READY_STATES)
               .values_list("task_id", flat=True))
    rows = [hotsql.new_row(task_id=task_id, state=states.REVOKED, date_done=timezone.now(), result=_revoked(reason))
            for task_id in task_ids if task_id not in done]
    if rows:
        hotsql.upsert(rows, ["state", "date_done", "result"])
        notify.publish([row["task_id"] for row in rows])
    return [row["task_id"] for row in rows]


def mark_stopped(task_id: str, reason: str) -> None:
    """A task revoked, then stopped where it ran (revoke with terminate): its REVOKED row gives that
    reason instead of revoke()'s (REVOKED stays final), so a copy of its message met later is not
    announced as revoked a second time (RabbitMQ hands it out again once the killed process's
    connection closes)."""
    _models().TaskResult.objects.filter(task_id=task_id, state=states.REVOKED).update(
        result=_revoked(reason), traceback=f"TaskRevokedError: {reason}\n")


def _revoked(reason: str) -> dict:
    """A REVOKED row's result: the TaskRevokedError its get() raises, with the reason."""
    return {"exc_type": "TaskRevokedError", "exc_module": "taskqueue.exceptions", "exc_message": [reason]}


def revoked_by_call(row) -> bool:
    """Whether a REVOKED row was revoked by revoke() (its task neither stopped nor expired)."""
    result = row.result if isinstance(row.result, dict) else {}
    return row.state == states.REVOKED and result.get("exc_message") == [REVOKED_BY_CALL]


def fail_dead_lettered(task_id: str, task_name: str, reason: str) -> bool:
    """Store FAILURE (DeadLettered, with the reason) for a task whose message became a dead letter,
    so its caller's get() raises; a task that already finished keeps its outcome."""
    state = known_states([task_id]).get(task_id, (states.PENDING, 0))[0]
    if state in states.READY_STATES:
        return False
    row = hotsql.new_row(task_id=task_id, task_name=task_name, state=states.FAILURE, date_done=timezone.now(),
                         result={"exc_type": "DeadLettered", "exc_module": "taskqueue.exceptions",
                                 "exc_message": [reason]})
    hotsql.upsert([row], ["task_name", "state", "result", "date_done"])
    notify.publish([task_id])
    return True


def unfail_dead_lettered(task_ids: list[str]) -> int:
    """Back to PENDING, for requeued dead letters, the rows that dead-lettering failed (only those)."""
    reopened = _models().TaskResult.objects.filter(
        task_id__in=task_ids, state=states.FAILURE, result__exc_type="DeadLettered").update(
        state=states.PENDING, result=None, traceback=None, date_done=None)
    notify.forget(task_ids)
    return reopened


def counts_by_worker(worker: str, since) -> dict[str, int]:
    """Finished results one worker (hostname) stored since a time, by state (the workers page)."""
    return dict(_models().TaskResult.objects.filter(state__in=states.READY_STATES, date_done__gte=since,
                                                    worker=worker).order_by().values_list("state")
                .annotate(n=Count("id")))


def known_states(task_ids: list[str]) -> dict[str, tuple[str, int]]:
    """state and retries of the rows that exist, for redelivery and revocation checks."""
    return {tid: (state, retries) for tid, state, retries in
            _models().TaskResult.objects.filter(task_id__in=task_ids).values_list("task_id", "state", "retries")}


def fetch(task_id: str):
    """The stored TaskResult of a task, or None."""
    return hotsql.read(task_id)


def forget(task_id: str) -> None:
    _models().TaskResult.objects.filter(task_id=task_id).delete()


def children_ids(task_id: str) -> list[str]:
    return list(_models().TaskResult.objects.filter(parent_id=task_id).order_by("date_created")
                .values_list("task_id", flat=True))


def returned_result(task_id: str) -> Any:
    """The tuple of the AsyncResult or GroupResult a task returned (None if it returned another value)."""
    meta = (_models().TaskResult.objects.filter(task_id=task_id, state=states.SUCCESS)
            .values_list("meta", flat=True).first())
    return serialization.from_jsonable(meta["returned"]) if isinstance(meta, dict) and "returned" in meta else None


def counts_by_state() -> dict[str, int]:
    return dict(_models().TaskResult.objects.order_by().values_list("state").annotate(n=Count("id")))


def delete_expired(expires: timedelta, batch_size: int) -> int:
    """Delete finished results older than `expires`, at most `batch_size` rows a statement, each its
    own commit (workers storing results never wait on it); with them the chords settled before then
    (counter and plan) and the groups made before then that no unfinished task or kept chord still
    names. Returns the results deleted."""
    models, cutoff = _models(), timezone.now() - expires
    deleted = _delete_in_batches(models.TaskResult.objects.ready().filter(date_done__lt=cutoff), batch_size)
    _delete_in_batches(models.ChordCounter.objects.filter(body_sent=True, date_done__lt=cutoff), batch_size)
    _delete_expired_groups(cutoff, batch_size)
    models.Workflow.objects.filter(date_created__lt=cutoff).delete()
    models.FailedCall.objects.filter(date_created__lt=cutoff).delete()
    return deleted


def _delete_expired_groups(cutoff: datetime, batch_size: int) -> None:
    """Saved groups made before `cutoff`, batch by batch, but those a kept chord or an unfinished
    task (by its group_id, an indexed look at only this batch's groups) still names."""
    models = _models()
    for batch in _batches_by_id(models.GroupResult.objects.filter(date_created__lt=cutoff), batch_size, "group_id"):
        names = [group_id for _, group_id in batch]
        kept = set(models.ChordCounter.objects.filter(group_id__in=names).values_list("group_id", flat=True))
        kept |= set(models.TaskResult.objects.filter(group_id__in=names).exclude(
            state__in=states.READY_STATES).values_list("group_id", flat=True))
        models.GroupResult.objects.filter(id__in=[pk for pk, group_id in batch if group_id not in kept]).delete()


def _delete_in_batches(rows, batch_size: int) -> int:
    """Delete `rows` by id, each batch its own statement and commit."""
    model = rows.model
    return sum(model.objects.filter(id__in=[pk for pk, in batch]).delete()[1].get(model._meta.label, 0)
               for batch in _batches_by_id(rows, batch_size))


def _batches_by_id(rows, batch_size: int, *fields: str) -> Iterator[list[tuple]]:
    """(id, *fields) of `rows` in batches of `batch_size`, ids ascending; each batch is read upwards
    from the last one's end, never again over the dead index entries of rows deleted before."""
    ordered = rows.order_by("id").values_list("id", *fields)
    batch = list(ordered[:batch_size])
    while batch:  # bounded: each batch starts above the last one's ids
        yield batch
        batch = list(ordered.filter(id__gt=batch[-1][0])[:batch_size]) if len(batch) == batch_size else []


# -- group rows ----------------------------------------------------------------------------------

def save_group(group_id: str, member_tuples: list) -> None:
    _models().GroupResult.objects.update_or_create(group_id=group_id, defaults={"member_ids": member_tuples})


def restore_group(group_id: str) -> list | None:
    row = _models().GroupResult.objects.filter(group_id=group_id).first()
    return None if row is None else row.member_ids


def delete_group(group_id: str) -> None:
    _models().GroupResult.objects.filter(group_id=group_id).delete()


# -- chord rows ----------------------------------------------------------------------------------

def create_chord(group_id: str, members: list[tuple[str, str, tuple]], body: dict) -> None:
    """Record a chord before any header member is sent: its counter, its group and a PENDING row
    per member (task id, name, result tuple), so revoking a member finds its chord."""
    member_ids = [task_id for task_id, _, _ in members]
    with transaction.atomic():
        _models().ChordCounter.objects.create(group_id=group_id, total=len(member_ids),
                                              remaining=len(member_ids), member_ids=member_ids, body=body)
        save_group(group_id, [as_tuple for _, _, as_tuple in members])
        _save_pending([(task_id, name) for task_id, name, _ in members], group_id)


def _save_pending(members: list[tuple[str, str]], group_id: str) -> None:
    TaskResult = _models().TaskResult
    if connections[router.db_for_write(TaskResult)].vendor == "postgresql":  # one statement, no model instances
        hotsql.upsert([hotsql.new_row(task_id=task_id, task_name=name, group_id=group_id)
                       for task_id, name in members], [])
    else:  # SQLite limits the parameters of one statement: bulk_create splits the rows
        TaskResult.objects.bulk_create([TaskResult(task_id=task_id, task_name=name, group_id=group_id)
                                        for task_id, name in members], ignore_conflicts=True)


def save_chord_members(group_id: str, outcomes: list[Outcome]) -> Outcome | None:
    """Store finished members of one chord and count them, in one transaction; a member already
    finished (a redelivery) is not counted twice. Returns the first newly failed member, if any."""
    models = _models()
    ids = [outcome.message.id for outcome in outcomes]
    with transaction.atomic():
        models.ChordCounter.objects.lock(group_id)
        before = dict(models.TaskResult.objects.filter(task_id__in=ids).values_list("task_id", "state"))
        _upsert_outcomes(outcomes)
        newly = [o for o in outcomes if before.get(o.message.id) not in states.READY_STATES]
        failed = next((o for o in newly if o.state != states.SUCCESS), None)
        if newly:
            models.ChordCounter.objects.count_finished(
                group_id, len(newly), [o.message.id for o in newly if o.state != states.SUCCESS])
    notify.publish(ids)
    return failed


def count_failed_member(group_id: str, task_id: str) -> None:
    """A member that will never succeed (revoked, or never run): the chord is resolved as failed.
    Counted once, however often it is met."""
    ChordCounter = _models().ChordCounter
    with transaction.atomic():
        if ChordCounter.objects.lock(group_id):
            ChordCounter.objects.count_failed(group_id, task_id)


def chords_of(task_ids: list[str]) -> list[tuple[str, str]]:
    """(task id, group id) of those tasks that belong to a group or chord."""
    return list(_models().TaskResult.objects.filter(task_id__in=task_ids).exclude(group_id=None)
                .values_list("task_id", "group_id"))


def chord_counter(group_id: str):
    """The ChordCounter of a chord, or None (not a chord, or its row expired); its plan (member ids
    and body) is read when first used (a settle after each batch of members, and only the last needs it)."""
    return _models().ChordCounter.objects.filter(group_id=group_id).first()


def results_in_order(task_ids: list[str]) -> list:
    """The stored return values of these tasks, in the order given."""
    TaskResult = _models().TaskResult
    values = {}
    for start in range(0, len(task_ids), _IN_BATCH):
        chunk = task_ids[start:start + _IN_BATCH]
        values.update(TaskResult.objects.filter(task_id__in=chunk).values_list("task_id", "result"))
    return [serialization.from_jsonable(values.get(task_id)) for task_id in task_ids]


def worker_starts(hostnames: list[str]) -> dict[str, tuple[datetime, int]]:
    """When each worker (hostname) last started, and its pid, from the records runworker writes."""
    rows = _models().WorkerRecord.objects.filter(hostname__in=hostnames).order_by("started_at")
    return {row.hostname: (row.started_at, row.pid) for row in rows}  # the latest start wins


def counts_by_task(worker: str) -> dict[str, int]:
    """Finished results per task name that one worker (hostname) stored: inspect().stats()'s total."""
    return dict(_models().TaskResult.objects.filter(worker=worker).order_by().values_list("task_name")
                .annotate(n=Count("id")))


# -- workflows: the outline of an applied canvas, the call of a failed task ------------------------

def save_workflow(key: str, outline: dict, aliases: list[str]) -> None:
    """One statement: the outline under its key, and alias keys that lead nested tasks to it."""
    Workflow = _models().Workflow
    rows = [Workflow(key=key, outline=outline), *(Workflow(key=alias, root_key=key) for alias in aliases)]
    connection = connections[router.db_for_write(Workflow)]
    if connection.vendor != "postgresql" or connection.in_atomic_block:  # the caller's transaction decides
        Workflow.objects.bulk_create(rows, ignore_conflicts=True)
        return
    # Its own transaction, not waiting for the WAL flush (2-4 ms on a busy server): a crash at that
    # moment loses only the drawing of tasks that have not run yet, never a result.
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        Workflow.objects.using(connection.alias).bulk_create(rows, ignore_conflicts=True)


def find_workflow(keys: list[str | None]) -> tuple[str, dict] | None:
    """The (key, outline) of the workflow that one of these keys (a task's id, group, parent or
    root id, the first found wins) belongs to; two queries at most."""
    Workflow = _models().Workflow
    found = list(Workflow.objects.filter(key__in=[key for key in keys if key])
                 .values_list("key", "root_key", "outline"))
    if not found:
        return None
    rank = {key: index for index, key in enumerate(keys)}
    key, root_key, outline = min(found, key=lambda row: rank.get(row[0], len(keys)))
    if root_key is not None:  # an alias: the outline is on its root's row
        key, outline = Workflow.objects.filter(key=root_key).values_list("key", "outline").first() or (key, None)
    return (key, outline) if outline is not None else None


def stored_options(message: Message) -> dict:
    """The options that send this call again, its chain's steps as dicts: as `FailedCall` keeps
    them and `reopen_followers` reads them."""
    return {**message.send_options(), "chain": [dict(step) for step in message.chain]}


def save_failed_calls(messages: list[Message]) -> None:
    """Keep how these failed tasks were sent (failure path only), so they can be resumed."""
    FailedCall = _models().FailedCall
    rows = []
    for message in messages:
        call = {"task": message.task, "args": list(message.args), "kwargs": message.kwargs,
                "options": stored_options(message)}
        # storable: jsonb refuses NUL and lone surrogates; tagged, they come back as they were
        rows.append(FailedCall(task_id=message.id, call=serialization.storable(serialization.to_jsonable(call))))
    FailedCall.objects.bulk_create(rows, ignore_conflicts=True)


def failed_call(task_id: str) -> dict | None:
    """The call kept for a failed task (task, args, kwargs, options), or None."""
    row = _models().FailedCall.objects.filter(task_id=task_id).values_list("call", flat=True).first()
    return serialization.from_jsonable(row) if row is not None else None


def reopen_failed(task_id: str) -> bool:
    """Make a FAILURE row PENDING again, for its new attempt; False when it is not FAILURE (any
    more): only one resume of a failure goes ahead."""
    reopened = bool(_models().TaskResult.objects.filter(task_id=task_id, state=states.FAILURE)
                    .update(state=states.PENDING, result=None, traceback=None, date_started=None, date_done=None))
    notify.forget([task_id] if reopened else [])
    return reopened


def reopen_never_run(task_ids: list[str]) -> None:
    """The FAILURE rows of tasks that never ran (behind a failure) become PENDING: they may run now."""
    TaskResult = _models().TaskResult
    for start in range(0, len(task_ids), _IN_BATCH):
        TaskResult.objects.filter(task_id__in=task_ids[start:start + _IN_BATCH], state=states.FAILURE).update(
            state=states.PENDING, result=None, traceback=None, date_done=None)
        notify.forget(task_ids[start:start + _IN_BATCH])


def reopen_followers(task_id: str, options: dict) -> None:
    """Before a failed task is sent again (resumed, or requeued from the dead letters): the rows of
    the chain steps that never ran behind it become PENDING, and a chord it (or a never-run step
    completing a chord member) resolved waits again, and so on outwards. `options`: the task's send
    options, with its chain's steps as dicts. Call inside a transaction."""
    rest = [node for step in options.get("chain") or [] for node in _tasks_of(step)]
    reopen_never_run([node_id for node_id, _ in rest])
    level = [(task_id, options), *rest]
    while level:
        following = []
        for node_id, node_options in level:
            mark = node_options.get("chord")
            body = reopen_chord(mark["group_id"], node_id) if mark else None
            if body is not None:
                following.extend(_tasks_of(body))
        reopen_never_run([node_id for node_id, _ in following])
        level = following


def _tasks_of(sig: dict) -> list[tuple[str, dict]]:
    """(task id, options) of every task of a frozen signature dict, depth first."""
    kind = sig.get("subtask_type")
    kwargs = sig.get("kwargs") or {}
    if kind in ("chain", "group"):
        return [node for step in kwargs.get("tasks", []) for node in _tasks_of(step)]
    if kind == "chord":
        return [*_tasks_of(kwargs["header"]), *_tasks_of(kwargs["body"])]
    options = sig.get("options") or {}
    return [(options["task_id"], options)] if options.get("task_id") else []


def reopen_chord(group_id: str, member_id: str) -> dict | None:
    """Count a failed member of a chord as unfinished again (its row already PENDING); the chord
    waits again unless another member failed too. Returns the body when its never-run failure must
    be undone too (it was failed for this member), else None. A member not counted as failed (or
    reopened already: a second requeue, say) changes nothing. Call inside a transaction."""
    models = _models()
    if not models.ChordCounter.objects.lock(group_id):
        return None
    counter = models.ChordCounter.objects.get(group_id=group_id)
    if member_id not in counter.member_ids or not counter.failed_members.filter(task_id=member_id).delete()[0]:
        return None
    counter.remaining = min(counter.total, counter.remaining + 1)
    other = (models.TaskResult.objects.filter(group_id=group_id, state__in=(states.FAILURE, states.REVOKED))
             .values_list("task_id", flat=True).first())
    body_failed = counter.body_sent and counter.state == counter.FAILURE
    if other is not None:
        counter.failed_task_id = other
        counter.save(update_fields=["remaining", "failed_task_id"])
        return None
    counter.state, counter.failed_task_id, counter.date_done, counter.body_sent = counter.PENDING, None, None, False
    counter.save(update_fields=["remaining", "state", "failed_task_id", "date_done", "body_sent"])
    return counter.body if body_failed else None
