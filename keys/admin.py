"""Admin for plans, subscriptions (approve, suspend, quota extension) and keys (revoke).

Every change goes through keys.services, so counters are only ever changed atomically and key
caches are dropped. Key hashes are never shown; keys are issued with `manage.py issue_key` or
by the subscriber, since the admin could not show the plaintext safely.
"""

from django.contrib import admin, messages
from django.template.response import TemplateResponse

from keys import services
from keys.clientip import client_ip
from keys.models import (
    ApiKey,
    Invitation,
    Membership,
    Organization,
    Plan,
    QuotaCounter,
    Subscription,
)


def _by(request) -> dict:
    """The operator and address for the audit entry of an admin action."""
    return {"actor": request.user, "ip": client_ip(request)}


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
    list_display = ["organization", "user", "plan", "status", "requested_plan", "created_at"]
    list_filter = ["status", "plan"]
    search_fields = ["organization__slug", "user__username", "user__email"]
    list_select_related = ["organization", "user", "plan", "requested_plan"]
    raw_id_fields = ["user", "organization"]
    # Changed by the actions (and `manage.py subscribe`), which audit them.
    readonly_fields = ["organization", "user", "plan", "status", "requested_plan"]
    inlines = [QuotaCounterInline]
    actions = ["approve", "reject_plan_change", "suspend", "grant_extension"]

    @admin.action(description="Reject the requested plan change")
    def reject_plan_change(self, request, queryset):
        for subscription in queryset.select_related("requested_plan"):
            services.reject_plan_change(subscription=subscription, **_by(request))
        self.message_user(request, "Rejected the requested plan change(s).")

    @admin.action(description="Approve (and apply the requested plan)")
    def approve(self, request, queryset):
        for subscription in queryset:
            services.approve_subscription(subscription=subscription, **_by(request))
        self.message_user(request, f"Approved {queryset.count()} subscription(s).")

    @admin.action(description="Suspend")
    def suspend(self, request, queryset):
        for subscription in queryset:
            services.suspend_subscription(subscription=subscription, **_by(request))
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
                services.grant_quota_extension(
                    subscription=subscription, units=units, **_by(request)
                )
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
    search_fields = ["prefix", "name", "subscription__organization__slug"]
    list_select_related = ["subscription__organization", "subscription__plan"]
    exclude = ["hashed_secret"]
    readonly_fields = [
        "subscription",
        "created_by",
        "allowed_models",
        "scopes",
        "allowed_ips",
        "allowed_origins",
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
            services.revoke_api_key(api_key=api_key, **_by(request))
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


class MembershipInline(admin.TabularInline):
    """Members are read here; roles change through the API or portal (audited, last owner kept)."""

    model = Membership
    extra = 0
    can_delete = False
    fields = ["user", "role", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class InvitationInline(admin.TabularInline):
    model = Invitation
    extra = 0
    can_delete = False
    fields = ["email", "role", "invited_by", "created_at", "expires_at", "used_at", "used_by"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    """Organizations with their members and invitations (read-only: changes are audited)."""

    list_display = ["slug", "name", "plan", "members", "created_at"]
    search_fields = ["slug", "name", "memberships__user__username"]
    readonly_fields = ["slug", "created_at"]
    inlines = [MembershipInline, InvitationInline]

    def get_queryset(self, request):
        from django.db.models import Count

        qs = super().get_queryset(request).select_related("subscription__plan")
        return qs.annotate(member_count=Count("memberships"))

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="plan")
    def plan(self, obj: Organization) -> str:
        subscription = getattr(obj, "subscription", None)
        return subscription.plan.name if subscription else "-"

    @admin.display(description="members", ordering="member_count")
    def members(self, obj: Organization) -> int:
        return obj.member_count


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "organization__slug"]
    list_select_related = ["user", "organization"]
    readonly_fields = ["user", "organization", "role", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # removal goes through remove_member: audited, never the last owner


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "organization", "role", "status", "created_at", "expires_at"]
    search_fields = ["email", "organization__slug"]
    list_select_related = ["organization"]
    exclude = ["token_hash"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="status")
    def status(self, obj: Invitation) -> str:
        return obj.status()
