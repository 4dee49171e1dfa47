"""`python manage.py expire_jobs [--days N]`: delete finished batch jobs past retention."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from predictions.jobs.housekeeping import expire_batch_jobs


class Command(BaseCommand):
    help = "Delete finished batch jobs (and their files) older than MLAPI_JOB_RETENTION_DAYS."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=None, help="Override the retention.")

    def handle(self, *args, days: int | None = None, **options) -> None:
        count = expire_batch_jobs(days=days)
        self.stdout.write(f"expired {count} job(s)")
