"""Abuse limits for the public account endpoints (signup, token) that the portal reuses.

Counters live in the default cache, whose `add`/`incr` are atomic across processes (Redis when
configured, else diskcache: never locmem, which would multiply limits by the worker count).
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache
from django_ratelimit import ALL
from django_ratelimit.core import is_ratelimited

from keys.clientip import client_ip
from mlapi.exceptions import DomainError

SIGNUP_RATE = "20/h"
LOGIN_FAILURES = 10
LOGIN_WINDOW = 15 * 60


class TooManyAttempts(DomainError):
    """429 for the abuse limits (problem+json with Retry-After)."""

    status = 429
    code = "rate_limited"
    title = "Too many requests"


def _ip_key(group: str, request) -> str:
    return client_ip(request)


def check_signup_rate(request) -> None:
    """20 signups per hour per client IP (counts every attempt); raises `TooManyAttempts`."""
    if is_ratelimited(
        getattr(request, "_request", request),
        group="mlapi.signup",
        key=_ip_key,
        rate=SIGNUP_RATE,
        method=ALL,
        increment=True,
    ):
        raise TooManyAttempts(
            "Too many signups from this address; try again later.",
            headers={"Retry-After": "3600"},
        )


def _login_key(request, username: str) -> str:
    digest = hashlib.sha256(f"{client_ip(request)}\x00{username.lower()}".encode()).hexdigest()
    return f"mlapi:loginfail:{digest[:32]}"


def check_login_allowed(request, username: str) -> None:
    """Refuse (429) once `LOGIN_FAILURES` attempts failed for this IP + username."""
    if (cache.get(_login_key(request, username)) or 0) >= LOGIN_FAILURES:
        raise TooManyAttempts(
            "Too many failed sign-in attempts; try again in 15 minutes.",
            headers={"Retry-After": str(LOGIN_WINDOW)},
        )


def note_failed_login(request, username: str) -> None:
    """Count one failure (atomic add + incr; the window starts at the first failure)."""
    key = _login_key(request, username)
    cache.add(key, 0, LOGIN_WINDOW)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, LOGIN_WINDOW)
