"""Portal routes for webhooks and alerts, under /portal/."""

from django.urls import path

from webhooks import portal_views

app_name = "webhooks_portal"

urlpatterns = [
    path("webhooks/", portal_views.webhook_list, name="list"),
    path("webhooks/<int:webhook_id>/", portal_views.webhook_detail, name="detail"),
    path(
        "webhooks/<int:webhook_id>/<str:action>/",
        portal_views.webhook_action,
        name="action",
    ),
    path("alerts/", portal_views.alerts, name="alerts"),
]
