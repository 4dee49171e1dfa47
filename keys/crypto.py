"""The API key scheme: `mlk_<prefix>.<secret>`, of which only the prefix and a hash are stored.

* `prefix` (12 hex characters, public) finds the row with one indexed lookup and lets people
  recognise a key in lists and logs without revealing it.
* `secret` is `secrets.token_urlsafe(32)`: 256 bits from the OS CSPRNG (the contract asks >= 160).
* The stored hash is HMAC-SHA-256 of the secret keyed with SECRET_KEY. A fast hash is the right
  choice here, unlike for passwords: slow hashes (Argon2, PBKDF2) exist to make guessing
  low-entropy human passwords expensive, but nobody can enumerate a 256-bit random secret, so
  stretching buys nothing and would add tens of milliseconds to every API call. The HMAC key
  means a leaked database alone does not even allow offline checking of candidate keys.
* Hashes are compared with `hmac.compare_digest` (constant time).

This module is pure: no Django models, no I/O; only `settings.SECRET_KEY` is read.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from django.conf import settings

KEY_PREFIX = "mlk_"
PREFIX_HEX_CHARS = 12
SECRET_BYTES = 32  # 256 bits of entropy; token_urlsafe(32) gives 43 characters
# Anything else is refused before touching the database or computing a hash.
KEY_PATTERN = re.compile(r"mlk_([0-9a-f]{12})\.([A-Za-z0-9_-]{43})")
MAX_KEY_LENGTH = 64


class MalformedKey(ValueError):
    """The string cannot be an mlapi API key."""


def generate_key() -> tuple[str, str, str]:
    """Return `(plaintext, prefix, hashed_secret)` for a new key; show the plaintext once."""
    prefix = secrets.token_hex(PREFIX_HEX_CHARS // 2)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return f"{KEY_PREFIX}{prefix}.{secret}", prefix, hash_secret(secret)


def parse_key(value: str) -> tuple[str, str]:
    """Split a presented key into `(prefix, secret)`; cheaply raise `MalformedKey` if not one."""
    if not isinstance(value, str) or len(value) > MAX_KEY_LENGTH:
        raise MalformedKey("not an API key")
    match = KEY_PATTERN.fullmatch(value)
    if match is None:
        raise MalformedKey("not an API key")
    return match.group(1), match.group(2)


def hash_secret(secret: str) -> str:
    """Hex HMAC-SHA-256 of the secret, keyed with SECRET_KEY."""
    return hmac.new(
        settings.SECRET_KEY.encode(), secret.encode(), digestmod=hashlib.sha256
    ).hexdigest()


def verify_secret(secret: str, hashed_secret: str) -> bool:
    """Constant-time check of a presented secret against the stored hash."""
    return hmac.compare_digest(hash_secret(secret), hashed_secret)
