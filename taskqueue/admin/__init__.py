"""The admin pages: results (tasks, groups, chords, dead letters) and periodic tasks."""

from . import dashboard, periodic, results  # noqa: F401  (each registers its model admins)
