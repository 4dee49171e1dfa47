"""Subscribers' accounts in the admin: Django's user admin, with each user's plan and status.

Subscriptions themselves (approve, suspend, quota extension) are managed in the keys admin.
"""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from portal.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Accounts: subscribers and operators (`is_staff`)."""

    list_display = ("username", "email", "plan", "subscription_status", "is_staff", "date_joined")
    list_select_related = ("subscription__plan",)
    list_filter = ("is_staff", "is_active", "subscription__status", "subscription__plan")

    @admin.display(description="plan", ordering="subscription__plan__name")
    def plan(self, user: User) -> str:
        subscription = getattr(user, "subscription", None)
        return subscription.plan.name if subscription else "—"

    @admin.display(description="subscription", ordering="subscription__status")
    def subscription_status(self, user: User) -> str:
        subscription = getattr(user, "subscription", None)
        return subscription.get_status_display() if subscription else "—"
