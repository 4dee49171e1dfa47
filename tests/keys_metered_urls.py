"""A tiny metered data-plane API for the keys tests (`@pytest.mark.urls`), beside keys.urls.

`POST /api/v1/test/metered {"units": n, "fail": bool}` behaves like a predict view: bad input is
a 400 before admit(), then admit(units=n), and `fail` refunds like a server-side error.
`GET /api/v1/test/info` is a non-consuming data-plane view (one rate token).
"""

from django.urls import include, path
from rest_framework import serializers
from rest_framework.response import Response

from keys.views import MeteredAPIView
from mlapi.exceptions import ServiceUnavailable


class MeteredInput(serializers.Serializer):
    units = serializers.IntegerField(min_value=1, max_value=100_000)
    fail = serializers.BooleanField(default=False)


class MeteredEchoView(MeteredAPIView):
    consumes_quota = True

    def post(self, request):
        data = MeteredInput(data=request.data)
        data.is_valid(raise_exception=True)
        units = data.validated_data["units"]
        self.meter.admit(units)
        if data.validated_data["fail"]:
            self.meter.refund()
            raise ServiceUnavailable("simulated model failure")
        self.meter.predictions = units
        return Response({"admitted": units})


class InfoView(MeteredAPIView):
    def get(self, request):
        return Response({"subscription": request.auth.subscription_id})


urlpatterns = [
    path("api/v1/test/metered", MeteredEchoView.as_view()),
    path("api/v1/test/info", InfoView.as_view()),
    path("api/v1/", include("keys.urls")),
]
