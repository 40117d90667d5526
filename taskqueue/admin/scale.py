"""What keeps the result list fast with millions of rows: no full count, filters whose choices come
from an index, search by id on an index."""

from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.utils.functional import cached_property

from .. import states

# The list pages through at most this many matches: counting them stays cheap however many there are.
COUNT_LIMIT = 10_000
# A filter offers at most this many values (each is one index probe).
CHOICES_LIMIT = 100


class BoundedPaginator(Paginator):
    """Counts no further than COUNT_LIMIT rows: a bounded sub-select instead of a COUNT of the table,
    in no order, so it reads whichever index finds the matches fastest."""

    object_list: QuerySet  # the admin's changelist queryset

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[:COUNT_LIMIT].count()


def distinct_values(queryset: QuerySet, column: str, limit: int = CHOICES_LIMIT) -> list[str]:
    """The distinct values of an indexed column, by walking the index from one value to the next
    (one probe per value) rather than reading every row; PostgreSQL and SQLite both run it."""
    model = queryset.model
    connection = connections[queryset.db]
    quote = connection.ops.quote_name
    table, col = quote(model._meta.db_table), quote(model._meta.get_field(column).column)
    sql = (f"WITH RECURSIVE walk(value) AS ("
           f" SELECT MIN({col}) FROM {table}"
           f" UNION ALL"
           f" SELECT (SELECT MIN({col}) FROM {table} WHERE {col} > walk.value) FROM walk WHERE walk.value IS NOT NULL"
           f") SELECT value FROM walk WHERE value IS NOT NULL LIMIT %s")
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


class IndexedValuesFilter(admin.SimpleListFilter):
    """A filter on one column whose choices are read from the column's index."""

    column = ""

    def lookups(self, request, model_admin):
        values = distinct_values(model_admin.get_queryset(request), self.column)
        return [(value, value or "(none)") for value in values]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset if value is None else queryset.filter(**{self.column: value})


class TaskNameFilter(IndexedValuesFilter):
    parameter_name = column = "task_name"
    title = "task name"


class QueueFilter(IndexedValuesFilter):
    title = parameter_name = column = "queue"


class WorkerFilter(IndexedValuesFilter):
    title = parameter_name = column = "worker"


_STATE_ORDER = (states.PENDING, states.RECEIVED, states.STARTED, states.RETRY, states.SUCCESS, states.FAILURE,
                states.REVOKED)


class StateFilter(admin.SimpleListFilter):
    """The known states (custom ones still show in the list and in search by state name)."""

    title = parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(state, state) for state in _STATE_ORDER]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset if value is None else queryset.filter(state=value)


def search_by_id(queryset: QuerySet, term: str) -> QuerySet:
    """A task id or its prefix (the list shows the first characters), or the exact id of a group,
    parent or root, or a task name: each on its own index."""
    term = term.strip()
    if not term:
        return queryset
    return queryset.filter(Q(task_id__startswith=term) | Q(group_id=term) | Q(parent_id=term) | Q(root_id=term)
                           | Q(task_name=term))
