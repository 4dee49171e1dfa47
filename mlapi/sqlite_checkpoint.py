"""WAL checkpoints of the SQLite database in a background thread of each web worker.

By default the connection whose COMMIT fills the WAL past 1000 pages runs the checkpoint, two
fsyncs included (`synchronous=NORMAL` syncs the WAL before and the database after it), inside
that request, while the next admits queue behind it: under load that was the p99 of the metered
predict path (docs/performance.md). Web workers turn automatic checkpoints off on their own
connections and one daemon thread per worker runs a PASSIVE checkpoint every
`MLAPI_SQLITE_CHECKPOINT_S` (0.5 s), which copies what readers allow and never blocks writers.
Durability is unchanged: a committed transaction is in the WAL either way. Other processes
(Celery, management commands, tests) keep SQLite's default.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

from django.conf import settings
from django.db import connections
from django.db.backends.signals import connection_created

logger = logging.getLogger("mlapi")


def _no_autocheckpoint(sender, connection, **kwargs) -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint=0")


def _checkpoint_forever(path: str, interval: float, stop: threading.Event) -> None:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        while not stop.wait(interval):
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error:  # locked or busy: the next round copies it
                logger.debug("WAL checkpoint skipped", exc_info=True)
    finally:
        conn.close()


def start_background_checkpoints() -> threading.Event | None:
    """In a web worker on a SQLite file: automatic checkpoints off, a checkpoint thread on.

    Returns the thread's stop event (None when the database is not a SQLite file).
    """
    database = settings.DATABASES["default"]
    path = str(database.get("NAME") or "")
    if database["ENGINE"] != "django.db.backends.sqlite3" or not os.path.exists(path):
        return None
    interval = float(os.environ.get("MLAPI_SQLITE_CHECKPOINT_S", "0.5"))
    connection_created.connect(_no_autocheckpoint, dispatch_uid="mlapi-no-autocheckpoint")
    for alias in connections:  # a connection opened before this hook gets the setting too
        conn = connections[alias]
        if conn.vendor == "sqlite" and conn.connection is not None:
            _no_autocheckpoint(None, conn)
    stop = threading.Event()
    thread = threading.Thread(
        target=_checkpoint_forever, args=(path, interval, stop), name="sqlite-checkpoint"
    )
    thread.daemon = True
    thread.start()
    return stop
