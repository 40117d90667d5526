"""`python -m benchmarks.pglimits`: what PostgreSQL allows here, through the Django ORM.

In a throwaway database (bench_pglimits): single-row inserts in autocommit (one commit each)
per second, and `bulk_create` rows per second. Prints one JSON object.
"""

from __future__ import annotations

import json
import time

import django
from django.conf import settings

from .common import drop_database, recreate_database

DB_NAME = "bench_pglimits"


def measure(single: int = 2_000, bulk: int = 50_000) -> dict:
    recreate_database(DB_NAME)
    settings.configure(
        INSTALLED_APPS=[], USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": DB_NAME, "USER": "postgres",
                               "HOST": "127.0.0.1", "PORT": "5432"}},
    )
    django.setup()
    from django.db import connection, models

    class Row(models.Model):
        name = models.CharField(max_length=64)
        value = models.JSONField(null=True)

        class Meta:
            app_label = "bench_pglimits"

    try:
        with connection.schema_editor() as editor:
            editor.create_model(Row)
        started = time.perf_counter()
        for i in range(single):
            Row.objects.create(name=f"row-{i}", value={"i": i})
        single_rate = single / (time.perf_counter() - started)
        rows = [Row(name=f"bulk-{i}", value={"i": i}) for i in range(bulk)]
        started = time.perf_counter()
        Row.objects.bulk_create(rows, batch_size=1_000)
        bulk_rate = bulk / (time.perf_counter() - started)
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            sync_commit = cursor.fetchone()[0]
    finally:
        connection.close()
        drop_database(DB_NAME)
    return {"single_insert_commits_per_s": single_rate, "bulk_create_rows_per_s": bulk_rate,
            "single_inserts": single, "bulk_rows": bulk, "synchronous_commit": sync_commit}


if __name__ == "__main__":
    print(json.dumps(measure()))
