"""Admin-side usage routes, mounted at /admin/ before admin.site.urls (staff only)."""

from django.contrib import admin
from django.urls import path

from usage.admin_views import usage_report

urlpatterns = [
    path("reports/usage/", admin.site.admin_view(usage_report), name="usage-report"),
]
