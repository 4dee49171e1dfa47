"""Data-plane credentials: API keys (`X-API-Key`) and subscriber JWTs (`Authorization: Bearer`).

The checks are transport-free functions, `authenticate_api_key(presented)` and
`authenticate_bearer(header)`, each returning `(user, keys.principal.Principal)` through the
~1 s per-process caches (`keys.keycache`); `authenticate_credentials` picks one. REST reads
them through the DRF classes below, gRPC from call metadata. Failures are DRF's 401
`AuthenticationFailed` with the contract codes: `invalid_credentials`, `key_revoked`,
`key_expired`, `token_expired` (none at all is the caller's `not_authenticated`).
"""

from __future__ import annotations

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.settings import api_settings

from keys import crypto, keycache
from keys.models import ApiKey, Subscription
from keys.principal import KeyRestrictions, Principal

API_KEY_HEADER = "HTTP_X_API_KEY"
CHALLENGE = 'ApiKey realm="mlapi", header="X-API-Key", Bearer realm="mlapi"'


def _failed(detail: str, code: str = "invalid_credentials") -> exceptions.AuthenticationFailed:
    return exceptions.AuthenticationFailed(detail, code=code)


def _load_key(prefix: str) -> keycache.CachedKey | None:
    """One query: the key (with its restrictions), its subscription, plan, user and creator."""
    row = (
        ApiKey.objects.select_related(
            "subscription__plan", "subscription__user", "created_by", "subscription__organization"
        )
        .filter(prefix=prefix)
        .first()
    )
    if row is None:
        return None
    subscription = row.subscription
    # request.user: the personal subscription's user, else the key's creator, else the org.
    user = subscription.user or row.created_by or OrganizationKeyUser(subscription.organization)
    return keycache.CachedKey(
        key_id=row.pk,
        hashed_secret=row.hashed_secret,
        revoked_at=row.revoked_at,
        expires_at=row.expires_at,
        user=user,
        principal=Principal.for_subscription(
            subscription,
            key_id=row.pk,
            restrictions=KeyRestrictions.from_key(row),
            user_id=getattr(user, "pk", None),
        ),
    )


class OrganizationKeyUser:
    """`request.user` for an organization's key whose creator no longer exists."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    pk = id = None

    def __init__(self, organization) -> None:
        self.username = f"org:{organization.slug}"

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return self.username


def _touch_last_used(key_id: int) -> None:
    """Record use at most once a minute per key and process (one cheap UPDATE)."""
    if keycache.due_for_last_used(key_id):
        ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())


def authenticate_api_key(presented: str) -> tuple:
    """`(user, principal)` for `mlk_<prefix>.<secret>`, or 401 AuthenticationFailed."""
    try:
        prefix, secret = crypto.parse_key(presented.strip())
    except crypto.MalformedKey:
        raise _failed("Malformed API key; expected mlk_<prefix>.<secret>.") from None
    hit, entry = keycache.get(prefix)
    if not hit:
        entry = _load_key(prefix)
        keycache.put(prefix, entry)
    if entry is None or not crypto.verify_secret(secret, entry.hashed_secret):
        raise _failed("Invalid API key.")
    if entry.revoked_at is not None:
        raise _failed("This API key was revoked.", code="key_revoked")
    if entry.expires_at is not None and entry.expires_at <= timezone.now():
        raise _failed("This API key has expired.", code="key_expired")
    _touch_last_used(entry.key_id)
    return entry.user, entry.principal


def authenticate_bearer(header: str | bytes) -> tuple | None:
    """`(user, principal or None)` for an `Authorization` value; None if it is not Bearer."""
    return _JWT.authenticate_header_value(header)


def authenticate_credentials(*, api_key: str | None, authorization: str | bytes | None):
    """The caller of a data-plane call from its credentials, or None when it sent none."""
    if api_key is not None:
        return authenticate_api_key(api_key)
    if authorization:
        return authenticate_bearer(authorization)
    return None


class ApiKeyAuthentication(BaseAuthentication):
    """`X-API-Key: mlk_<prefix>.<secret>`, looked up through the ~1 s per-process cache.

    Keys are accepted in that header only: a key in `Authorization: Bearer` or in the query
    string (where it would end up in logs and browser history) is refused with a clear message.
    """

    def authenticate(self, request):
        presented = request.META.get(API_KEY_HEADER)
        if presented is None:
            if "api_key" in request.query_params:
                raise _failed(
                    "API keys are not accepted in the URL; send the key in the X-API-Key header."
                )
            return None
        return authenticate_api_key(presented)

    def authenticate_header(self, request) -> str:
        return CHALLENGE


class SubscriberJWTAuthentication(JWTAuthentication):
    """`Authorization: Bearer <access JWT>` (simplejwt) for a subscriber.

    `request.auth` is the subscriber's `Principal` (None for a user without a subscription,
    e.g. an operator). User and subscription are cached per process for ~1 s, like API keys.
    Garbage, wrong-type, blacklisted or unknown-user tokens are `invalid_credentials`, expired
    ones `token_expired`.
    """

    www_authenticate_realm = "mlapi"

    def authenticate(self, request):
        header = self.get_header(request)
        if header is None:
            return None
        return self.authenticate_header_value(header)

    def authenticate_header_value(self, header: str | bytes) -> tuple | None:
        """The check itself, from the header's value (REST header or gRPC metadata)."""
        raw = self.get_raw_token(header.encode() if isinstance(header, str) else header)
        if raw is None:
            return None
        if raw.startswith(b"mlk_"):
            raise _failed("API keys go in the X-API-Key header, not in Authorization.")
        token = self._validate(raw)
        cache_key = f"jwt-user:{token.get(api_settings.USER_ID_CLAIM)}"
        hit, entry = keycache.get(cache_key)
        if not hit:
            entry = self._load(token)
            keycache.put(cache_key, entry)
        if entry is None:
            raise _failed("The token's user does not exist or is inactive.")
        return entry

    def _load(self, token) -> tuple | None:
        """`(user, principal or None)`, or None for an unknown or inactive user (2 queries)."""
        try:
            user = self.get_user(token)
        except exceptions.APIException:
            return None
        subscription = Subscription.objects.personal_for(user).select_related("plan").first()
        return user, (Principal.for_subscription(subscription) if subscription else None)

    def _validate(self, raw: bytes):
        from rest_framework_simplejwt.tokens import AccessToken

        try:
            return AccessToken(raw)
        except ExpiredTokenError:
            raise _failed(
                "The access token has expired; refresh it.", code="token_expired"
            ) from None
        except TokenError:
            raise _failed("Invalid token.") from None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="mlapi"'


_JWT = SubscriberJWTAuthentication()
