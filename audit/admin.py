"""The audit log in the admin: every entry, filterable, read-only (no add, change or delete)."""

from django.contrib import admin

from audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["time", "actor", "action", "target_type", "target_id", "organization_id", "ip"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor", "action", "target_id"]
    date_hierarchy = "time"
    readonly_fields = [f.name for f in AuditEntry._meta.fields]
    actions = None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
