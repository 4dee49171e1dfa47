"""Helpers for the usage tests (no tests here): subscribers, and a tiny metered data-plane view.

`MeteredTestView` behaves like a predict view as far as usage is concerned: it names a
principal (as keys authentication does), takes the real limits through `keys.limits.admit`
(so 429s are the real ones), and fills the request's `mlapi_meter` as the data plane does.
It is routed at `/api/v1/models/<name>/predict` by this module's `urlpatterns` (the project's
routes plus this one), used with `@pytest.mark.urls` and by the gunicorn test server
(`tests.support.usage_wsgi`).
"""

from __future__ import annotations

import itertools
import os

from django.contrib.auth import get_user_model
from django.urls import include, path
from django.utils import timezone
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from keys.limits import admit
from keys.meter import RequestMeter
from keys.models import ApiKey, Plan, Subscription
from keys.principal import Principal
from mlapi.protocols import protocol_for_path

_seq = itertools.count(1)


def make_subscription(*, rate=1000.0, burst=1000, quota=100000, period="month", **plan_kw):
    """An active subscriber on a fresh plan, with two API keys; returns (subscription, keys)."""
    n = next(_seq)
    plan = Plan.objects.create(
        name=f"plan-{os.getpid()}-{n}",
        rate=rate,
        burst=burst,
        quota=quota,
        quota_period=period,
        max_instances=100,
        max_job_rows=1000,
        **plan_kw,
    )
    user = get_user_model().objects.create_user(
        username=f"usage-user-{os.getpid()}-{n}",
        email=f"usage-{os.getpid()}-{n}@example.com",
        password="x-Pass-12345",
    )
    subscription = Subscription.objects.create(user=user, plan=plan, status="active")
    keys = [
        ApiKey.objects.create(
            subscription=subscription, name=f"k{i}", prefix=f"u{n}x{i}", hashed_secret="-"
        )
        for i in range(2)
    ]
    return subscription, keys


class PredictInput(serializers.Serializer):
    n = serializers.IntegerField(min_value=1, max_value=100)


class MeteredTestView(APIView):
    """A stand-in predict route: `X-Test-Sub` / `X-Test-Key` name the principal."""

    authentication_classes: list = []
    permission_classes: list = []

    def post(self, request: Request, name: str) -> Response:
        subscription = Subscription.objects.select_related("plan").get(
            pk=int(request.headers["X-Test-Sub"])
        )
        key_id = int(request.headers.get("X-Test-Key") or 0) or None
        principal = Principal.for_subscription(subscription, key_id=key_id)
        meter = request._request.mlapi_meter = RequestMeter(
            protocol=protocol_for_path(request.path),
            started_at=timezone.now(),
            method=request.method,
            path=request.path,
            request_bytes=int(request.META.get("CONTENT_LENGTH") or 0),
            principal=principal,
            model=name,
            version="1",
        )
        data = PredictInput(data=request.data)
        data.is_valid(raise_exception=True)
        n = data.validated_data["n"]
        admit(principal=principal, units=n)
        meter.predictions = n
        return Response({"model": name, "version": "1", "predictions": [0] * n})


urlpatterns = [
    path("api/v1/models/<slug:name>/predict", MeteredTestView.as_view()),
    path("", include("mlapi.urls")),
]


handler404 = "mlapi.exceptions.not_found_view"
handler500 = "mlapi.exceptions.server_error_view"
