"""The database store's direct SQLite path: one admit in `BEGIN IMMEDIATE` ... `COMMIT`.

The same statements as keys.limits.database, sent straight to the sqlite3 connection:
Django's atomic() and cursor wrappers cost more than the two upserts themselves (profile in
docs/performance.md), and admits queue on a flock instead of SQLite's sleeping busy handler.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

from django.db import connection

from keys.limits import sql
from keys.limits.base import Limits, Outcome, Step


def admit_sqlite(limits: Limits, *, units: int, now: float) -> Step:
    """The database store's admit on SQLite, for a connection in autocommit mode.

    Only outside any atomic block (the caller checks), so the transaction is ours alone;
    errors come out as Django's (`wrap_database_errors`), so a locked or broken database
    still becomes a 503 upstream.
    """
    connection.ensure_connection()
    raw = connection.connection
    with _writers_queue(connection.settings_dict["NAME"]), connection.wrap_database_errors:
        raw.execute("BEGIN IMMEDIATE")
        try:
            step = _admit_statements(raw, limits, units, now)
            raw.execute("COMMIT")
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
    return step


_thread_lock = threading.Lock()
_lock_files: dict[tuple[int, str], int] = {}  # by pid too: a forked child opens its own


@contextlib.contextmanager
def _writers_queue(database: str) -> Iterator[None]:
    """Queue this process's and other processes' admits on a lock the kernel hands over at once.

    Two admits that meet on SQLite's write lock wait in SQLite's busy handler, which sleeps
    1, 2, 5, 10 ms... between tries: under load that sleeping was most of admit's time (py-spy,
    docs/performance.md). An exclusive `flock` on `<database>.admit-lock` (plus a thread lock,
    since flock does not exclude threads sharing one descriptor) wakes the next admit as soon
    as the previous one commits. Other writers still meet admits on SQLite's own lock, as before.
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


def _admit_statements(raw, limits: Limits, units: int, now: float) -> Step:
    statements = sql.sqlite3_statements()
    sub = limits.subscription_id
    params = sql.bucket_params(sub, limits.rate, limits.burst, now)
    row = raw.execute(statements["take"], params).fetchone()
    period = {"sub": sub, "start": sql.period_param(limits.period_start)}
    if row is None:
        peeked = raw.execute(statements["peek_bucket"], {"sub": sub}).fetchone()
        tokens = sql.refilled(peeked, limits.rate, limits.burst, now)
        return Step(Outcome.RATE_LIMITED, tokens, *_read(raw, statements, period))
    tokens = float(row[0])
    if units == 0:
        return Step(Outcome.ADMITTED, tokens, *_read(raw, statements, period))
    consume = statements[sql.consume_statement(units, limits.quota)]
    row = raw.execute(consume, {**period, "units": units, "quota": limits.quota}).fetchone()
    if row is not None:
        return Step(Outcome.ADMITTED, tokens, int(row[0]), int(row[1]))
    return Step(Outcome.QUOTA_EXCEEDED, tokens, *_read(raw, statements, period))


def _read(raw, statements: dict[str, str], period: dict) -> tuple[int, int]:
    current = raw.execute(statements["read"], period).fetchone()
    return (int(current[0]), int(current[1])) if current else (0, 0)
