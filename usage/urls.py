"""Usage API routes, mounted at /api/v1/."""

from django.urls import path

from usage.views import OrgUsageView, UsageView

app_name = "usage"
urlpatterns = [
    path("usage", UsageView.as_view(), name="usage"),
    path("orgs/<str:slug>/usage", OrgUsageView.as_view(), name="org-usage"),
]
