"""Open Inference Protocol V2 and KServe V1 routes, mounted at / (CONTRACT.md section 6)."""

from django.urls import path, re_path

from predictions import protocol_views as views

MODEL = "v2/models/<slug:name>"
VERSION = "v2/models/<slug:name>/versions/<str:version>"

urlpatterns = [
    path("v2/health/live", views.health_live, name="v2-live"),
    path("v2/health/ready", views.health_ready, name="v2-ready"),
    path("v2", views.server_metadata, name="v2-server"),
    path(MODEL, views.V2ModelMetadataView.as_view(), name="v2-model"),
    path(VERSION, views.V2ModelMetadataView.as_view(), name="v2-model-version"),
    path(f"{MODEL}/ready", views.V2ModelReadyView.as_view(), name="v2-model-ready"),
    path(f"{VERSION}/ready", views.V2ModelReadyView.as_view(), name="v2-version-ready"),
    path(f"{MODEL}/infer", views.V2InferView.as_view(), name="v2-infer"),
    path(f"{VERSION}/infer", views.V2InferView.as_view(), name="v2-version-infer"),
    re_path(
        r"^v1/models/(?P<name>[-a-zA-Z0-9_]+):predict$",
        views.KServeV1PredictView.as_view(),
        name="kserve-v1-predict",
    ),
]
