"""Base views: `MeteredAPIView` for every data-plane endpoint, `ManagementAPIView` for the account.

See docs/architecture.md "Request flow on the data plane".
"""

from __future__ import annotations

from datetime import datetime

from rest_framework.authentication import SessionAuthentication
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.views import APIView

from keys import events as key_events
from keys import limits
from keys.authentication import ApiKeyAuthentication, SubscriberJWTAuthentication
from keys.permissions import ActiveSubscription, ManagementPlane
from keys.principal import Principal
from mlapi.exceptions import DomainError

STATE_ATTR = "_mlapi_limit_state"
ADMITTED_ATTR = "_mlapi_admitted"


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
    """Data plane: API key or JWT, active subscription, rate + quota limits, RateLimit headers.

    Views that predict set `consumes_quota = True` and call `self.admit(request, units=n)`
    once the input validated (one rate token + n quota units, atomically); a server-side
    failure after that calls `self.refund(request)`. Other views take one rate token in
    `initial()`. A quota-consuming request that ends before `admit()` (bad input, unknown
    model) still takes a token, so errors cannot be used to hammer the service for free.
    """

    authentication_classes = [ApiKeyAuthentication, SubscriberJWTAuthentication]
    permission_classes = [ActiveSubscription]
    content_negotiation_class = CommonAcceptNegotiation
    consumes_quota: bool = False
    data_plane = True  # authentication marks the request for usage recording

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if not self.consumes_quota:
            self._limit(request, lambda principal: limits.take_token(principal=principal))

    def admit(self, request, *, units: int) -> None:
        """Take one token and `units` of quota for this request, or raise a 429."""
        self._limit(request, lambda principal: limits.admit(principal=principal, units=units))
        state = getattr(request, STATE_ATTR)
        key_events.note_admitted(principal=request.auth, units=units, state=state)  # arithmetic
        setattr(request, ADMITTED_ATTR, (units, state.period_start))

    def refund(self, request) -> None:
        """Give back the units `admit()` took (the prediction failed on our side)."""
        admitted: tuple[int, datetime] | None = getattr(request, ADMITTED_ATTR, None)
        if admitted is not None:
            limits.refund(principal=request.auth, units=admitted[0], period_start=admitted[1])
            setattr(request, ADMITTED_ATTR, None)

    def _limit(self, request, step) -> None:
        try:
            setattr(request, STATE_ATTR, step(request.auth))
        except limits.LimitError as exc:
            setattr(request, STATE_ATTR, exc.state)
            raise

    def finalize_response(self, request, response, *args, **kwargs):
        principal = getattr(request._request, "mlapi_principal", None)
        if isinstance(principal, Principal):
            response = self._with_limit_headers(request, response, principal)
        return super().finalize_response(request, response, *args, **kwargs)

    def _with_limit_headers(self, request, response, principal: Principal):
        state = getattr(request, STATE_ATTR, None)
        try:
            if state is None and self.consumes_quota and principal.is_active:
                try:  # ended before admit(): the request still costs its rate token
                    state = limits.take_token(principal=principal)
                except limits.RateLimited as exc:
                    state, response = exc.state, self.handle_exception(exc)
            if state is None:
                state = limits.peek(principal=principal)
        except DomainError:  # the limits store is down; the response says so or stands
            return response
        for name, value in state.headers().items():
            response[name] = value
        return response


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
