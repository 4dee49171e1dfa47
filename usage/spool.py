"""Last-resort persistence of usage events the database would not take at process exit.

Each exiting process writes its leftover events to one JSON Lines file in
MLAPI_DATA_DIR/usage-spool/; the next flush in any process claims a file by renaming it (atomic,
so only one process replays it), writes its events and deletes it, or renames it back.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime
from pathlib import Path

import orjson
from django.conf import settings

from usage.events import UsageEvent
from usage.writer import write_events

logger = logging.getLogger("mlapi.usage")


def spool_dir() -> Path:
    path = Path(settings.DATA_DIR) / "usage-spool"
    path.mkdir(parents=True, exist_ok=True)
    return path


def spool_events(events: list[dict]) -> Path:
    """Append events (UsageEvent dicts) to a new spool file, fsynced; returns its path."""
    path = spool_dir() / f"{os.getpid()}-{uuid.uuid4().hex}.jsonl"
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        for event in events:
            handle.write(orjson.dumps(event) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    tmp.rename(path)
    return path


def drain_spool() -> int:
    """Write every spooled event; returns how many. Cheap when the spool is empty."""
    directory = Path(settings.DATA_DIR) / "usage-spool"
    if not directory.is_dir():
        return 0
    written = 0
    for path in sorted(directory.glob("*.jsonl")):
        claimed = path.with_suffix(f".claimed-{os.getpid()}")
        try:
            path.rename(claimed)
        except OSError:
            continue  # another process claimed it
        events = []
        for line in claimed.read_bytes().splitlines():
            data = orjson.loads(line)
            data["time"] = datetime.fromisoformat(data["time"])
            events.append(UsageEvent(**data))
        try:
            write_events(events)
        except Exception:
            claimed.rename(path)
            raise
        claimed.unlink()
        written += len(events)
    if written:
        logger.info("usage: replayed %d spooled events", written)
    return written
