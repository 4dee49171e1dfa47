"""Webhook secrets: made, shown once, kept encrypted, and used to sign (Standard Webhooks).

A signing secret must be readable to sign, so unlike an API key it cannot be kept as a hash.
It is encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key
derived from SECRET_KEY, so a database dump alone does not reveal it. Changing SECRET_KEY makes
the stored secrets unreadable: deliveries then fail with a clear error until the endpoint is
re-created (documented in the README).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)
_KEY_CONTEXT = b"mlapi.webhooks.secret-encryption.v1"


class SecretUnreadable(Exception):
    """The stored secret cannot be decrypted (SECRET_KEY changed since it was stored)."""


@lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    derived = hmac.new(secret_key.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (the Standard Webhooks secret format)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def encrypt_secret(secret: str) -> str:
    return _fernet(settings.SECRET_KEY).encrypt(secret.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return _fernet(settings.SECRET_KEY).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("the endpoint's secret cannot be read; re-create it") from exc


def signature_headers(*, secret: str, msg_id: str, body: str, at: datetime | None = None) -> dict:
    """`webhook-id`, `webhook-timestamp`, `webhook-signature` for one attempt of `body`."""
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }
