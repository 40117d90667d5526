"""``python -m benchmarks admin``: the admin's pages with 1,000,000 result rows on PostgreSQL.

Creates a throwaway database (bench_admin_<pid>), migrates it, loads the rows with one
INSERT … SELECT over generate_series (180,000 of them in the last hour, 50 a second, the rest 2 a
second over the 4.7 days before; 90 % SUCCESS, 5 % FAILURE, a few of every other state; ten task
names, three queues, eight workers; chains of three with parent and root ids; a 1,000-member chord
among them), VACUUM ANALYZEs as autovacuum would, then times each
page through Django's test Client in this process: the figure is server time (URL resolution,
queries, template rendering), no network. Each page is fetched once to warm up, then `rounds`
times; the table gives the median and the slowest, and the queries of one fetch.
"""

from __future__ import annotations

import os
import statistics
import time

NAMES = [f"shop.tasks.{name}" for name in ("send_email", "charge", "refund", "score", "resize", "notify",
                                          "sync_stock", "invoice", "report", "cleanup")]
CHORD_SIZE = 1_000

_LOAD = """
INSERT INTO taskqueue_taskresult (task_id, task_name, state, args, kwargs, result, traceback, meta, retries,
    queue, worker, parent_id, root_id, group_id, date_created, date_started, date_done)
SELECT md5('t' || g)::uuid::text,
       (%(names)s::text[])[1 + g %% 10],
       CASE WHEN g %% 100 < 90 THEN 'SUCCESS' WHEN g %% 100 < 95 THEN 'FAILURE' WHEN g %% 100 < 97 THEN 'RETRY'
            WHEN g %% 100 < 98 THEN 'STARTED' WHEN g %% 1000 < 999 THEN 'REVOKED' ELSE 'PENDING' END,
       jsonb_build_array(g, g + 1), '{}'::jsonb, to_jsonb(g * 2), NULL, NULL, g %% 3,
       (ARRAY['default', 'default', 'default', 'scoring', 'emails'])[1 + g %% 5],
       'worker' || (g %% 8) || '@host',
       CASE WHEN g %% 3 > 0 THEN md5('t' || (g - 1))::uuid::text END,
       md5('t' || (g - g %% 3))::uuid::text,
       NULL,
       now() - age, now() - age + interval '5 milliseconds',
       CASE WHEN g %% 100 < 97 THEN now() - age + (g %% 2000) * interval '1 millisecond' END
FROM generate_series(1, %(rows)s) AS g,
     -- the last hour busy (50 tasks a second), then 2 a second for the days before
     LATERAL (SELECT CASE WHEN g <= 180000 THEN g * interval '20 milliseconds'
                          ELSE interval '1 hour' + (g - 180000) * interval '500 milliseconds' END AS age) AS t
"""


def load(total: int) -> dict:
    """The rows, a chord of CHORD_SIZE among them; returns ids the pages are opened with."""
    from django.db import connection
    from django.utils import timezone

    from taskqueue import store
    from taskqueue.models import ChordCounter, GroupResult, TaskResult

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(_LOAD, {"names": NAMES, "rows": total - CHORD_SIZE})
    group_id = "chord-bench"
    members = [f"chord-member-{index:04d}" for index in range(CHORD_SIZE)]
    now = timezone.now()
    TaskResult.objects.bulk_create(
        [TaskResult(task_id=task_id, task_name="shop.tasks.score", state="SUCCESS" if index % 500 else "FAILURE",
                    args=[index], result=index, group_id=group_id, root_id=group_id, queue="scoring",
                    worker="worker1@host", date_created=now, date_started=now, date_done=now)
         for index, task_id in enumerate(members)], batch_size=1000)
    counter = ChordCounter.objects.create(group_id=group_id, total=CHORD_SIZE, remaining=0, member_ids=members,
                                          body={"task": "shop.tasks.report", "args": [], "kwargs": {}},
                                          state="FAILURE", failed_task_id=members[0], body_sent=True, date_done=now)
    group = GroupResult.objects.create(group_id=group_id, member_ids=[[[task_id, None], None] for task_id in members])
    # its outline, as `chord(...).apply_async()` writes it: the workflow view draws it
    outline = {"chord": group_id, "members": [{"id": task_id, "task": "shop.tasks.score"} for task_id in members],
               "body": {"id": "chord-bench-body", "task": "shop.tasks.report"}}
    store.save_workflow(group_id, outline, [])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum would leave a table at rest: visibility map set
    elapsed = time.monotonic() - started
    sample = TaskResult.objects.filter(task_id=_task_id(12345)).get()
    member = TaskResult.objects.filter(task_id=members[1]).get()
    return {"seconds": elapsed, "sample": sample, "counter": counter, "group": group, "member": member}


def _task_id(g: int) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT md5('t' || %s)::uuid::text", [g])
        return cursor.fetchone()[0]


def pages(ids: dict) -> list[tuple[str, str]]:
    from datetime import timedelta
    from urllib.parse import urlencode

    from django.utils import timezone

    sample, counter, group = ids["sample"], ids["counter"], ids["group"]
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    today = urlencode({"date_created__gte": str(midnight), "date_created__lt": str(midnight + timedelta(days=1))})
    base = "/admin/taskqueue/taskresult/"
    return [
        ("task list, first page", base),
        ("task list, page 20", f"{base}?p=20"),
        ("filter state=FAILURE", f"{base}?state=FAILURE"),
        ("filter state=PENDING (rare)", f"{base}?state=PENDING"),
        ("filter task name", f"{base}?task_name=shop.tasks.refund"),
        ("filter queue=emails", f"{base}?queue=emails"),
        ("filter worker", f"{base}?worker=worker3%40host"),
        ("filter created today", f"{base}?{today}"),
        ("two filters (queue, state)", f"{base}?queue=scoring&state=FAILURE"),
        ("search full task id", f"{base}?q={sample.task_id}"),
        ("search id prefix (8)", f"{base}?q={sample.task_id[:8]}"),
        ("search root id", f"{base}?q={sample.root_id}"),
        ("lineage: all of a root", f"{base}?root_id={sample.root_id}"),
        ("link by task id (redirect)", f"{base}id/{sample.task_id}/"),
        ("task detail", f"{base}{sample.pk}/change/"),
        ("chord page (1,000 members)", f"/admin/taskqueue/chordcounter/{counter.pk}/change/"),
        ("chord page, members page 7", f"/admin/taskqueue/chordcounter/{counter.pk}/change/?members=7"),
        ("group page (1,000 members)", f"/admin/taskqueue/groupresult/{group.pk}/change/"),
        ("workflow view, 1,000-member chord", f"{base}{ids['member'].pk}/workflow/"),
        ("chord list", "/admin/taskqueue/chordcounter/"),
        ("dashboard", "/admin/taskqueue/dashboard/"),
        ("/metrics", "/metrics"),
    ]


class QueryCounter:
    """Counts the queries of one request (Django's own query log is reset when a request starts)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def time_pages(client, targets: list[tuple[str, str]], rounds: int) -> list[dict]:
    from django.db import connection

    rows = []
    for label, url in targets:
        queries = QueryCounter()
        with connection.execute_wrapper(queries):
            response = client.get(url)
        assert response.status_code in (200, 302), (label, url, response.status_code)
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
        rows.append({"page": label, "median_ms": statistics.median(samples), "max_ms": max(samples),
                     "queries": queries.count, "status": response.status_code})
    return rows


def run(rows: int = 1_000_000, rounds: int = 5, keep: bool = False) -> list[dict]:
    name = f"bench_admin_{os.getpid()}"
    os.environ["TASKQUEUE_BENCH_DB"] = name
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.admin_settings"
    from .common import drop_database, recreate_database

    recreate_database(name)
    try:
        import django

        django.setup()
        from django.contrib.auth.models import User
        from django.core.management import call_command
        from django.test import Client

        call_command("migrate", verbosity=0)
        ids = load(rows)
        print(f"loaded {rows:,} result rows in {ids['seconds']:.1f} s (INSERT … SELECT, then VACUUM ANALYZE)",
              flush=True)
        client = Client()
        client.force_login(User.objects.create_superuser("bench", password="bench"))
        table = time_pages(client, pages(ids), rounds)
        print(format_table(table, rows, rounds))
        return table
    finally:
        from django.db import connections

        connections.close_all()
        if not keep:
            drop_database(name)


def format_table(table: list[dict], rows: int, rounds: int) -> str:
    lines = [f"| page ({rows:,} rows) | median ms | slowest ms | queries |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {row['page']} | {row['median_ms']:.1f} | {row['max_ms']:.1f} | {row['queries']} |" for row in table]
    return "\n".join(lines) + f"\n(server time through Django's test Client, {rounds} fetches after one warm-up)"
