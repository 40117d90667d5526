"""The admin pages: results (tasks, groups, chords, dead letters), the dashboard, periodic tasks,
queues and workers."""

from . import dashboard, deadletters, periodic, queues, results, workers  # noqa: F401  (each registers its model admins)
