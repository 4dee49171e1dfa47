"""`python manage.py prune_usage [--days N]`: expire raw usage records, keep rollups."""

from django.core.management.base import BaseCommand, CommandParser

from usage.services import prune_usage_records


class Command(BaseCommand):
    help = "Delete raw usage records older than MLAPI_USAGE_RETENTION_DAYS (rollups are kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=None, help="Override the retention.")

    def handle(self, *args, days: int | None = None, **options) -> None:
        if days is not None and days < 0:
            self.stderr.write("--days must be zero or more")
            raise SystemExit(2)
        deleted = prune_usage_records(retention_days=days)
        self.stdout.write(f"Deleted {deleted} usage records.")
