"""Refresh tokens at rest: simplejwt's blacklist app keeps each issued refresh token's full text
in `OutstandingToken.token`. Blacklisting goes by `jti`, so only a digest is kept instead (a
database dump must not hand out working refresh tokens)."""

from __future__ import annotations

import hashlib

DIGEST_PREFIX = "sha256:"


def digest_outstanding_token(sender: type, instance: object, **kwargs: object) -> None:
    """pre_save receiver for OutstandingToken: replace the token text by its SHA-256."""
    token = getattr(instance, "token", "")
    if token and not token.startswith(DIGEST_PREFIX):
        instance.token = DIGEST_PREFIX + hashlib.sha256(token.encode()).hexdigest()
