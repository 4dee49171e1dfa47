"""Per-process reservations (keys.limits.reservations) across a fork: gunicorn and Celery's
prefork pools fork workers from a parent that may hold reservations."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

from keys.limits.base import Limits
from keys.limits.reservations import Reservation, Reservations


def _limits() -> Limits:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    return Limits(1, 10.0, 100, 1000, start, start + timedelta(days=31))


def test_a_forked_child_starts_with_no_reservations_even_if_the_lock_was_held_at_the_fork():
    given_back: list[Reservation] = []
    reservations = Reservations(given_back.append, size_max=16)
    limits = _limits()
    reservations.keep(
        Reservation(token="t", limits=limits, units_each=1, tokens=5, units=5, used=10,
                    bucket=50.0, extension=0, until=time.monotonic() + 60)
    )  # fmt: skip
    assert reservations.take(limits, 1).used == 11  # the parent serves from it
    with reservations._lock:  # as the parent's sweeper may hold it when a worker is forked
        pid = os.fork()
        if pid == 0:  # the child: a deadlock ends at the alarm, with a failing exit code
            signal.alarm(5)
            empty = reservations.take(limits, 1) is None and reservations.units_held(limits) == 0
            os._exit(0 if empty else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert reservations.units_held(limits) == 4 and not given_back  # the parent's, untouched
