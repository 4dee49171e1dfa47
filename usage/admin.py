"""Admin changelists for raw usage records and daily rollups (read-only: usage is evidence)."""

from django.contrib import admin

from usage.models import DailyUsage, UsageRecord


class ReadOnlyAdmin(admin.ModelAdmin):
    """Usage is written only by the recorder; the admin may look and delete, not edit."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    date_hierarchy = "time"
    list_display = (
        "time",
        "subscription",
        "key",
        "model_name",
        "model_version",
        "protocol",
        "status",
        "error_code",
        "predictions",
        "latency_ms",
    )
    list_filter = ("protocol", "status", "error_code", "plan_name", "model_name")
    search_fields = (
        "subscription__organization__slug",
        "subscription__user__username",
        "model_name",
        "error_code",
        "path",
        "key__prefix",
    )
    list_select_related = ("subscription__organization", "subscription__plan", "key")
    show_full_result_count = False  # COUNT(*) over millions of rows per page view is wasteful


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    date_hierarchy = "day"
    list_display = (
        "day",
        "subscription",
        "key_id",
        "model_name",
        "model_version",
        "protocol",
        "requests",
        "predictions",
        "errors",
        "throttled",
    )
    list_filter = ("protocol", "model_name", "subscription__plan")
    search_fields = (
        "subscription__organization__slug",
        "subscription__user__username",
        "model_name",
        "model_version",
    )
    list_select_related = ("subscription__organization", "subscription__plan")
