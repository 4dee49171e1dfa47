"""Base views: `MeteredAPIView` for every data-plane endpoint, `ManagementAPIView` for the account.

See docs/architecture.md "Request flow on the data plane".
"""

from __future__ import annotations

from django.utils import timezone
from rest_framework.authentication import SessionAuthentication
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.views import APIView

from keys.authentication import ApiKeyAuthentication, SubscriberJWTAuthentication
from keys.meter import RequestMeter
from keys.permissions import ActiveSubscription, ManagementPlane
from keys.principal import Principal
from mlapi.protocols import protocol_for_path


class CommonAcceptNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, answered at once for what API clients send: no Accept, `*/*` or JSON.

    Parsing the Accept header and ranking media types costs about as much as authentication on
    the predict path; for these three values DRF's own answer is the first renderer with its
    media type, which is what this returns. Anything else (a format override, other media
    types, a 406) goes through DRF unchanged.
    """

    COMMON_ACCEPT = frozenset({None, "*/*", "application/json"})

    def select_renderer(self, request, renderers, format_suffix=None):
        first = renderers[0] if renderers else None
        if (
            first is not None
            and first.media_type == "application/json"
            and format_suffix is None
            and not request.META.get("QUERY_STRING")
            and request.META.get("HTTP_ACCEPT") in self.COMMON_ACCEPT
        ):
            return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)


class MeteredAPIView(APIView):
    """Data plane over REST: API key or JWT, active subscription, limits, RateLimit headers.

    Each request gets a `keys.meter.RequestMeter` (`self.meter`, and `request.mlapi_meter`
    for usage recording) before authentication; an authenticated caller becomes its
    `principal`. Views that predict set `consumes_quota = True` and charge the meter once the
    input validated (`meter.admit(n)`: one rate token + n quota units, atomically; a failure on
    our side then `meter.refund()`); other views take one rate token in `initial()`. The reply
    of every authenticated request carries the RateLimit headers and any header the data
    plane put on the meter (`meter.headers`), errors included.
    """

    authentication_classes = [ApiKeyAuthentication, SubscriberJWTAuthentication]
    permission_classes = [ActiveSubscription]
    content_negotiation_class = CommonAcceptNegotiation
    consumes_quota: bool = False
    meter: RequestMeter | None = None

    def initial(self, request, *args, **kwargs) -> None:
        raw = request._request
        self.meter = raw.mlapi_meter = RequestMeter(
            protocol=protocol_for_path(raw.path),
            started_at=timezone.now(),
            consumes_quota=self.consumes_quota,
            method=raw.method or "",
            path=raw.path,
            request_bytes=int(raw.META.get("CONTENT_LENGTH") or 0),
            peer=raw.META.get("REMOTE_ADDR", ""),
            forwarded_for=raw.META.get("HTTP_X_FORWARDED_FOR", ""),
            origin=raw.META.get("HTTP_ORIGIN", ""),
        )
        super().initial(request, *args, **kwargs)
        if not self.consumes_quota:
            self.meter.take_token()

    def perform_authentication(self, request) -> None:
        request.user  # noqa: B018 - DRF authenticates lazily; this runs the classes
        if isinstance(request.auth, Principal):
            self.meter.principal = request.auth

    def admit(self, request, *, units: int) -> None:
        """Take one token and `units` of quota for this request, or raise a 429."""
        self.meter.admit(units)

    def refund(self, request) -> None:
        """Give back the units `admit()` took (the prediction failed on our side)."""
        self.meter.refund()

    def finalize_response(self, request, response, *args, **kwargs):
        meter = self.meter
        if meter is not None and meter.principal is not None:
            headers, refused = meter.settle()
            if refused is not None:
                response = self.handle_exception(refused)
            for name, value in headers.items():
                response[name] = value
            for name, value in meter.headers.items():
                response[name] = value
        return super().finalize_response(request, response, *args, **kwargs)


class ManagementAPIView(GenericAPIView):
    """Account and key management: JWT or session (with CSRF); an API key gets 403.

    Not `data_plane`: these requests are neither metered nor recorded as usage.
    """

    authentication_classes = [
        SubscriberJWTAuthentication,
        SessionAuthentication,
        ApiKeyAuthentication,
    ]
    permission_classes = [ManagementPlane]

    @property
    def subscription(self):
        """The caller's subscription (404 when they have none)."""
        from django.http import Http404

        from keys.models import Subscription

        subscription = (
            Subscription.objects.personal_for(self.request.user)
            .select_related("plan", "user", "organization")
            .first()
        )
        if subscription is None:
            raise Http404("You have no subscription.")
        return subscription
