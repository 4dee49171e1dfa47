"""Per-process cache of API key lookups, so the warm predict path makes no query for the key.

An entry lives at most `TTL` seconds: a revoked key, an expired rotation grace or a suspended
subscription is seen by every process within that second without any cross-process signal.
Revocation in this process also drops the entry at once. Only hashes are cached, never keys.
JWT authentication keeps `(user, principal)` per user id here too, under `jwt-user:<id>`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keys.principal import Principal

TTL = 1.0
MAX_ENTRIES = 10_000
LAST_USED_EVERY = 60.0  # seconds between last_used_at writes per key and process


@dataclass(frozen=True, slots=True)
class CachedKey:
    """What authentication needs about one key, loaded with one query."""

    key_id: int
    hashed_secret: str
    revoked_at: datetime | None
    expires_at: datetime | None
    user: Any
    principal: Principal


_lock = threading.Lock()
_entries: dict[str, tuple[float, Any]] = {}
_last_used: dict[int, float] = {}


def get(prefix: str) -> tuple[bool, Any]:
    """`(hit, entry)`; an entry of None is a cached "no such key" (or user, for JWTs)."""
    item = _entries.get(prefix)
    if item is None or item[0] < time.monotonic():
        return False, None
    return True, item[1]


def put(prefix: str, entry: Any) -> None:
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()  # crude but bounded; entries are only a second old anyway
        _entries[prefix] = (time.monotonic() + TTL, entry)


def forget(prefix: str) -> None:
    with _lock:
        _entries.pop(prefix, None)


def clear() -> None:
    """Drop everything (tests, and after bulk changes in this process)."""
    with _lock:
        _entries.clear()
        _last_used.clear()


def due_for_last_used(key_id: int) -> bool:
    """True at most once a minute per key in this process: time to write last_used_at."""
    now = time.monotonic()
    last = _last_used.get(key_id)
    if last is not None and now - last < LAST_USED_EVERY:
        return False
    with _lock:
        if len(_last_used) >= MAX_ENTRIES:
            _last_used.clear()
        _last_used[key_id] = now
    return True
