"""The database store's direct SQLite path: a transaction in `BEGIN IMMEDIATE` ... `COMMIT`.

The same statements as keys.limits.database, sent straight to the sqlite3 connection:
Django's atomic() and cursor wrappers cost more than the two upserts themselves (profile in
docs/performance.md), and every writer of a web worker (admits, reservations given back, the
usage writer) queues on a flock instead of SQLite's sleeping busy handler.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from django.db import connection

from keys.limits import sql

T = TypeVar("T")
# execute(statement name, params, fetch=True) -> the first row (None: no row, or fetch=False)
Execute = Callable[..., tuple | None]


def run_in_sqlite_transaction(work: Callable[[Execute], T]) -> T:
    """`work(execute)` in one write transaction, for a connection in autocommit mode.

    Only outside any atomic block (the caller checks), so the transaction is ours alone;
    errors come out as Django's (`wrap_database_errors`), so a locked or broken database
    still becomes a 503 upstream.
    """
    connection.ensure_connection()
    raw = connection.connection
    statements = sql.sqlite3_statements()

    def execute(name: str, params: dict, fetch: bool = True) -> tuple | None:
        cursor = raw.execute(statements[name], params)
        return cursor.fetchone() if fetch else None

    with _writers_queue(connection.settings_dict["NAME"]), connection.wrap_database_errors:
        raw.execute("BEGIN IMMEDIATE")
        try:
            result = work(execute)
            raw.execute("COMMIT")
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
    return result


@contextlib.contextmanager
def queued_writes() -> Iterator[None]:
    """For another writer of the default database (the usage writer): on SQLite, outside any
    atomic block, queue with the admits. Its transaction then never holds SQLite's lock while
    an admit sleeps in the busy handler with the queue held (measured: make bench's embedded
    a/b 0.39 -> 0.48 in one run)."""
    if connection.vendor != "sqlite" or not connection.get_autocommit():
        yield
        return
    with _writers_queue(connection.settings_dict["NAME"]):
        yield


_thread_lock = threading.Lock()
_lock_files: dict[tuple[int, str], int] = {}  # by pid too: a forked child opens its own


@contextlib.contextmanager
def _writers_queue(database: str) -> Iterator[None]:
    """Queue this process's and other processes' writers on a lock the kernel hands over at once.

    Two writers that meet on SQLite's write lock wait in SQLite's busy handler, which sleeps
    1, 2, 5, 10 ms... between tries: under load that sleeping was most of admit's time (py-spy,
    docs/performance.md). An exclusive `flock` on `<database>.admit-lock` (plus a thread lock,
    since flock does not exclude threads sharing one descriptor) wakes the next writer as soon
    as the previous one commits. Writers that do not queue (Celery, management commands) still
    meet these on SQLite's own lock, as before.
    """
    fd = _lock_files.get((os.getpid(), database))
    if fd is None:
        if not database or database == ":memory:" or str(database).startswith("file:"):
            yield  # no file to lock beside; SQLite's lock alone
            return
        fd = _lock_files.setdefault(
            (os.getpid(), database),
            os.open(f"{database}.admit-lock", os.O_RDWR | os.O_CREAT, 0o600),
        )
    with _thread_lock:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
