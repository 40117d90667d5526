"""The admin pages: results (tasks, groups, chords, dead letters), the dashboard and periodic tasks."""

from . import dashboard, periodic, results  # noqa: F401  (each registers its model admins)
