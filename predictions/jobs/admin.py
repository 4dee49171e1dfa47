"""Admin for batch jobs: list with status, progress and owner; retry and cancel actions.

Registered by importing this module from predictions/admin.py (Django autodiscovers only the
app's own `admin` module).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from mlapi.exceptions import DomainError
from predictions.jobs import services
from predictions.models import BatchJob


@admin.register(BatchJob)
class BatchJobAdmin(admin.ModelAdmin):
    """Operators watch jobs and retry failed or cancelled ones, or cancel runaway ones."""

    list_display = [
        "id",
        "owner",
        "model_version",
        "status",
        "progress",
        "rows_failed",
        "created_at",
    ]
    list_filter = ["status", "input_format", "created_at"]
    search_fields = ["id", "subscription__user__username", "original_filename"]
    list_select_related = ["subscription__user", "model_version__model"]
    date_hierarchy = "created_at"
    actions = ["retry_jobs", "cancel_jobs"]
    readonly_fields = [f.name for f in BatchJob._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are submitted through the API or the portal

    @admin.display(description="owner", ordering="subscription__user__username")
    def owner(self, job: BatchJob) -> str:
        return str(job.subscription.user)

    @admin.display(description="progress")
    def progress(self, job: BatchJob) -> str:
        percent = int(100 * job.rows_done / job.rows_total) if job.rows_total else 0
        return f"{job.rows_done}/{job.rows_total} ({percent}%)"

    def _apply(self, request: HttpRequest, queryset: QuerySet, action, verb: str) -> None:
        done, refused = 0, 0
        for job in queryset:
            try:
                action(job=job)
                done += 1
            except DomainError:
                refused += 1
        self.message_user(request, f"{verb} {done} job(s).", messages.SUCCESS)
        if refused:
            self.message_user(
                request, f"{refused} job(s) were not in a state for that.", messages.WARNING
            )

    @admin.action(description="Retry selected failed/cancelled jobs (resume where they stopped)")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._apply(request, queryset, services.retry_batch_job, "Re-queued")

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._apply(request, queryset, services.cancel_batch_job, "Cancelled")
