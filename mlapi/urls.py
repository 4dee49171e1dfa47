"""Top-level routes: API (v1), inference protocols (V2, KServe V1), portal, admin, docs, health."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from mlapi import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    # The data plane first: Django tries patterns in order, and a predict that had to walk
    # past the ~30 management routes cost about 40 us of CPU (no two of these prefixes overlap).
    path("api/v1/", include("predictions.urls")),
    path("", include("predictions.protocol_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api/v1/orgs/<str:slug>/", include("webhooks.urls")),
    path("api/v1/", include("keys.urls")),
    path("api/v1/", include("usage.urls")),
    path("admin/", include("usage.admin_urls")),
    path("admin/", admin.site.urls),
    path("portal/", include("webhooks.portal_urls")),
    path("portal/", include("portal.urls")),
    path("", include("portal.root_urls")),
]

handler404 = "mlapi.exceptions.not_found_view"
handler500 = "mlapi.exceptions.server_error_view"
