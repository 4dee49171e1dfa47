"""The periodic scan: events that no request decides (key expiry) and crossings a dead
process failed to write (quota thresholds). Both go through the deduplicated outbox, so the
scan can run on every node as often as it likes."""

from __future__ import annotations

from keys import events as key_events


def scan() -> dict[str, int]:
    return {
        "key_expiring": key_events.emit_expiring_keys(),
        "quota_threshold": key_events.reconcile_quota_thresholds(),
    }
