"""The admin pages: results (tasks, groups, chords, dead letters), periodic tasks, queues and workers."""

from . import deadletters, periodic, queues, results, workers  # noqa: F401  (each registers its model admins)
