"""Writing usage: one `UsageEvent` per answered request, into raw records and daily rollups.

Two modes (MLAPI_USAGE_MODE), measured in bench/usage_overhead.py:
- `buffered` (default): `record_usage` appends to an in-process queue and returns; a daemon
  thread writes the queue every MLAPI_USAGE_FLUSH_INTERVAL_S seconds (or sooner when it holds
  MLAPI_USAGE_FLUSH_SIZE events) in ONE transaction: a bulk INSERT of the records plus one
  multi-row upsert of the rollups. Nothing is lost: a failed write puts the batch back and is
  retried with backoff (a locked SQLite file, a PostgreSQL restart); gunicorn's `worker_exit`
  hook and `atexit` flush what is left; if the database is still unreachable at exit the batch
  is spooled to MLAPI_DATA_DIR/usage-spool/ and written by the next flush of any process.
- `sync`: the same write, in the request thread, before the response leaves.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connections

from usage.events import UsageEvent
from usage.spool import drain_spool, spool_events
from usage.writer import write_events

logger = logging.getLogger("mlapi.usage")


class UsageBuffer:
    """A thread-safe queue of events with a background writer; one per process."""

    def __init__(self) -> None:
        self._events: collections.deque[UsageEvent] = collections.deque()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def add(self, event: UsageEvent) -> None:
        self._ensure_thread()
        self._events.append(event)
        if len(self._events) >= settings.MLAPI_USAGE_FLUSH_SIZE:
            self._wake.set()

    def write_now(self, batch: list[UsageEvent]) -> bool:
        """Write in the calling thread (sync mode); False leaves the batch to the caller."""
        return self._write_with_retry(batch, attempts=3)

    def pending(self) -> int:
        return len(self._events)

    def flush(self, *, attempts: int = 5) -> int:
        """Write everything queued so far; returns how many events were written.

        Retries a failing write `attempts` times with backoff, then leaves the events queued.
        """
        written = 0
        with self._flush_lock:
            try:
                drain_spool()
            except Exception as exc:  # noqa: BLE001 - the spool stays for the next flush
                logger.warning("usage: spool replay failed (%s)", exc)
            # Only what was queued when the flush began: under load, events keep arriving
            # during each commit, and draining "until empty" wrote them in tiny batches, one
            # durable commit each, back to back (issue 12: most WAL flushes on PostgreSQL).
            target = len(self._events)
            while self._events and written < target:
                batch = self._take(settings.MLAPI_USAGE_FLUSH_SIZE * 4)
                if not self._write_with_retry(batch, attempts=attempts):
                    self._events.extendleft(reversed(batch))
                    break
                written += len(batch)
        return written

    def flush_at_exit(self) -> None:
        """Final flush (worker_exit, atexit): whatever cannot be written goes to the spool."""
        self._stopping.set()
        self._wake.set()
        self.flush(attempts=3)
        if self._events:
            batch = self._take(len(self._events))
            spool_events([event.as_dict() for event in batch])
            logger.warning("usage: spooled %d events the database did not take", len(batch))

    def _take(self, limit: int) -> list[UsageEvent]:
        batch: list[UsageEvent] = []
        while self._events and len(batch) < limit:
            batch.append(self._events.popleft())
        return batch

    def _write_with_retry(self, batch: list[UsageEvent], *, attempts: int) -> bool:
        delay = 0.05
        for attempt in range(1, attempts + 1):
            try:
                write_events(batch)
                return True
            except Exception as exc:  # noqa: BLE001 - any DB failure: keep the batch, retry
                logger.warning("usage: write of %d failed (%s), try %d", len(batch), exc, attempt)
                close_old_connections()
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        return False

    def _ensure_thread(self) -> None:
        if os.getpid() != self._pid:  # forked: the parent's thread and queue are not ours
            self.__init__()
        if self._stopping.is_set():  # exiting: the exit flush (and atexit) write the rest
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        interval = settings.MLAPI_USAGE_FLUSH_INTERVAL_S
        while not self._stopping.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stopping.is_set():
                break
            if not self._events:
                continue
            try:
                self.flush()
            finally:
                # One connection per flush: an idle writer holds no database session.
                connections.close_all()


BUFFER = UsageBuffer()
atexit.register(BUFFER.flush_at_exit)


def record_usage(event: UsageEvent) -> None:
    """Record one event in the configured mode (see module docstring)."""
    if settings.MLAPI_USAGE_MODE == "sync" and BUFFER.write_now([event]):
        return
    BUFFER.add(event)


def flush_usage() -> int:
    """Write all buffered events of this process now (tests, shutdown, management commands)."""
    return BUFFER.flush()


def flush_usage_on_exit() -> None:
    """For gunicorn's `worker_exit` hook: flush, spooling whatever the database refuses."""
    BUFFER.flush_at_exit()
