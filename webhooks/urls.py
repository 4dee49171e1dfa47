"""Webhook routes, mounted under /api/v1/orgs/<slug>/webhooks (contract §12)."""

from django.urls import path

from webhooks import views

ONE = "webhooks/<int:webhook_id>"

urlpatterns = [
    path("webhooks", views.WebhookListView.as_view(), name="org-webhooks"),
    path(ONE, views.WebhookDetailView.as_view(), name="org-webhook"),
    path(f"{ONE}/test", views.WebhookTestView.as_view(), name="org-webhook-test"),
    path(f"{ONE}/deliveries", views.DeliveryListView.as_view(), name="org-webhook-deliveries"),
    path(
        f"{ONE}/deliveries/<int:delivery_id>/redeliver",
        views.RedeliverView.as_view(),
        name="org-webhook-redeliver",
    ),
]
