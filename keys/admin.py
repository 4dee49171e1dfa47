"""Admin for plans, subscriptions (approve, suspend, quota extension) and keys (revoke).

Every change goes through keys.services, so counters are only ever changed atomically and key
caches are dropped. Key hashes are never shown; keys are issued with `manage.py issue_key` or
by the subscriber, since the admin could not show the plaintext safely.
"""

from django.contrib import admin, messages
from django.template.response import TemplateResponse

from keys import services
from keys.models import ApiKey, Plan, QuotaCounter, Subscription


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "rate",
        "burst",
        "quota",
        "quota_period",
        "max_instances",
        "max_job_rows",
        "requires_approval",
        "is_public",
    ]
    list_filter = ["is_public", "requires_approval", "quota_period"]


class QuotaCounterInline(admin.TabularInline):
    """Read-only: extensions are granted with the action (an atomic increment)."""

    model = QuotaCounter
    extra = 0
    can_delete = False
    readonly_fields = ["period_start", "used", "extension"]
    ordering = ["-period_start"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["user", "plan", "status", "requested_plan", "created_at"]
    list_filter = ["status", "plan"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user", "plan", "requested_plan"]
    raw_id_fields = ["user"]
    inlines = [QuotaCounterInline]
    actions = ["approve", "suspend", "grant_extension"]

    @admin.action(description="Approve (and apply the requested plan)")
    def approve(self, request, queryset):
        for subscription in queryset:
            services.approve_subscription(subscription=subscription)
        self.message_user(request, f"Approved {queryset.count()} subscription(s).")

    @admin.action(description="Suspend")
    def suspend(self, request, queryset):
        for subscription in queryset:
            services.suspend_subscription(subscription=subscription)
        self.message_user(request, f"Suspended {queryset.count()} subscription(s).")

    @admin.action(description="Grant a one-off quota extension")
    def grant_extension(self, request, queryset):
        if "apply" in request.POST:
            try:
                units = int(request.POST.get("units", ""))
            except ValueError:
                units = 0
            if units < 1:
                self.message_user(request, "Enter a positive number.", messages.ERROR)
                return None
            for subscription in queryset.select_related("plan"):
                services.grant_quota_extension(subscription=subscription, units=units)
            self.message_user(request, f"Granted {units} extra predictions.")
            return None
        context = {**self.admin_site.each_context(request), "subscriptions": queryset}
        return TemplateResponse(request, "admin/keys/grant_extension.html", context)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "prefix",
        "name",
        "subscription",
        "status",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "name", "subscription__user__username"]
    list_select_related = ["subscription__user", "subscription__plan"]
    exclude = ["hashed_secret"]
    readonly_fields = [
        "subscription",
        "prefix",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "rotated_to",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="status")
    def status(self, obj: ApiKey) -> str:
        return obj.status()

    @admin.action(description="Revoke")
    def revoke(self, request, queryset):
        for api_key in queryset:
            services.revoke_api_key(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")
