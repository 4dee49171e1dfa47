"""Admin registrations of the predictions app."""

from predictions.jobs import admin as jobs_admin  # noqa: F401  (registers BatchJob)
