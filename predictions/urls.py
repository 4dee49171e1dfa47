"""v1 model routes, mounted at /api/v1/ (CONTRACT.md section 6)."""

from django.urls import include, path

from predictions import operator_views, views

app_name = "predictions"

urlpatterns = [
    path("models", views.ModelListView.as_view(), name="model-list"),
    path("models/<slug:name>", views.ModelDetailView.as_view(), name="model-detail"),
    path("models/<slug:name>/predict", views.PredictView.as_view(), name="predict"),
    path(
        "models/<slug:name>/versions",
        operator_views.VersionUploadView.as_view(),
        name="version-upload",
    ),
    path("models/<slug:name>/rollout", operator_views.RolloutView.as_view(), name="rollout"),
    path(
        "models/<slug:name>/versions/<str:version>",
        operator_views.VersionUpdateView.as_view(),
        name="version-update",
    ),
    path(
        "models/<slug:name>/versions/<str:version>/predict",
        views.PredictView.as_view(),
        name="predict-version",
    ),
    path("", include("predictions.jobs.urls")),
]
