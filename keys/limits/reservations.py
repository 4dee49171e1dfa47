"""Per-process reservations: a busy process admits most requests without a Redis round trip.

When one subscription's requests come fast, the lease store's admit also takes a small
*reservation* for its process (keys.limits.lua ADMIT): `size` more rate tokens and as many
requests' worth of quota units, counted as used from that moment. The process then admits the
next requests of the same size from it in memory, under a lock, for at most `WINDOW_S`; what it
did not use goes back to Redis (UNRESERVE) as soon as it cannot serve a request or the window
ends (a sweeper thread, so a process that goes quiet never keeps units).

Why the invariants still hold:
* Nothing is admitted that the bucket and the pool did not give out: a reservation only moves
  the moment tokens and units are taken, never their number (a, and the bucket's bound).
* Redis grants one only while the bucket stays at least half full and the period's count stays
  below the first quota.threshold (`RESERVE_BELOW_PERCENT`): crossings and the last units of a
  period are always admitted one request at a time, by Redis itself.
* A refusal for quota waits while reservations are out (`<pool>:held`, as for leases in
  flight), so units are never stranded in one process while another refuses (e). A holder
  that died (b) stops holding refusals back after `HELD_S`; its units are lost:
  under-admission of at most `size * units` per process killed, documented in
  docs/performance.md (f).
* The RateLimit headers of a request served from a reservation are the reservation's own
  counts: exact in one process, behind other processes' work by at most `WINDOW_S`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from keys.events import THRESHOLDS
from keys.limits.base import Limits, Outcome, Step

logger = logging.getLogger("mlapi.limits")
WINDOW_S = 0.05  # how long a process serves from one reservation
HELD_S = 2.0  # after this, Redis stops counting a reservation that never came back
RESERVE_BELOW_PERCENT = min(THRESHOLDS)  # quota.threshold crossings are Redis's own
MAX_KEYS = 10_000


@dataclass(slots=True)
class Reservation:
    """Tokens and units one admit took for its process; served from until `until`."""

    token: str  # its id in `<pool>:held`
    limits: Limits
    units_each: int  # the size of the requests it serves
    tokens: int  # left
    units: int  # left
    used: int  # the period's count after the last unit it handed out
    bucket: float  # tokens in the bucket right after it was taken
    extension: int
    until: float  # time.monotonic()

    def serve(self, units: int) -> Step:
        self.tokens -= 1
        self.units -= units
        before, self.used = self.used, self.used + units
        return Step(Outcome.ADMITTED, self.bucket + self.tokens, self.used, self.extension, before)

    @property
    def left(self) -> bool:
        return self.tokens > 0 or self.units > 0


class Reservations:
    """This process's reservations, one per (pool, request size), and how large to ask for.

    `give_back(reservation)` is the store's UNRESERVE; it runs outside the lock, on the
    request's thread or the sweeper's.
    """

    def __init__(self, give_back: Callable[[Reservation], None], *, size_max: int) -> None:
        self._give_back = give_back
        self.size_max = size_max
        self._start_empty()
        # A forked child starts with nothing (its parent's reservations are its parent's) and
        # with a lock of its own: the parent's sweeper may have held this one at the fork.
        this = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (r := this()) is not None and r._start_empty())

    def _start_empty(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple, Reservation] = {}
        self._sizes: dict[tuple, tuple[int, float]] = {}  # key -> (size, last Redis admit)
        self._spent: dict[tuple, Reservation] = {}  # used up, still on `<pool>:held`
        self._wake = threading.Event()
        self._sweeper: threading.Thread | None = None

    @staticmethod
    def key(limits: Limits, units: int) -> tuple:
        return limits.subscription_id, limits.period_start, limits.quota, units

    def take(self, limits: Limits, units: int) -> Step | None:
        """Admit from this process's reservation, or None (then ask Redis)."""
        if self.size_max <= 0:
            return None
        key = self.key(limits, units)
        with self._lock:
            held = self._held.get(key)
            if held is None:
                return None
            if time.monotonic() < held.until and held.tokens >= 1 and held.units >= units:
                return held.serve(units)
            del self._held[key]
            size, last = self._sizes.get(key, (1, 0.0))
            size = min(self.size_max, size * 2) if not held.left else max(1, size // 2)
            self._sizes[key] = (size, last)
            if not held.left:  # the next admit tells Redis (or the sweeper does)
                self._spent[key] = held
        if held.left:
            self._give_back(held)
        return None

    def size_for(self, limits: Limits, units: int) -> tuple[int, str]:
        """How many more requests' worth the next Redis admit should reserve (0: quiet), and
        the id of this process's used-up reservation for that pool, which it takes off
        `<pool>:held` ('' if none)."""
        if self.size_max <= 0:
            return 0, ""
        key, now = self.key(limits, units), time.monotonic()
        with self._lock:
            size, last = self._sizes.get(key, (1, 0.0))
            if len(self._sizes) >= MAX_KEYS:
                self._sizes.clear()
            self._sizes[key] = (size, now)
            spent = self._spent.pop(key, None)
        return (size if now - last < WINDOW_S else 0), (spent.token if spent else "")

    def keep(self, reservation: Reservation) -> None:
        """Serve from `reservation` (taken by Redis just now) until its window ends."""
        key = self.key(reservation.limits, reservation.units_each)
        with self._lock:
            previous = self._held.pop(key, None)
            self._held[key] = reservation
            self._wake.set()
            if self._sweeper is None:
                self._sweeper = threading.Thread(
                    target=self._sweep, args=(self._wake,), name="mlapi-reservations", daemon=True
                )
                self._sweeper.start()
        if previous is not None and previous.left:  # two threads reserved at once
            self._give_back(previous)

    def units_held(self, limits: Limits) -> int:
        """Units this process holds for `limits`' pool (counted as used, not delivered)."""
        pool = self.key(limits, 0)[:3]
        with self._lock:
            return sum(held.units for key, held in self._held.items() if key[:3] == pool)

    def give_back_all(self) -> None:
        """Return everything, and take used-up reservations off `held` (stopping, or a
        batch that needs every unit)."""
        with self._lock:
            held = [*self._held.values(), *self._spent.values()]
            self._held, self._spent = {}, {}
        for reservation in held:
            self._give_back(reservation)

    def discard(self) -> None:
        """Forget everything without returning it (tests, whose Redis state is wiped)."""
        with self._lock:
            self._held.clear()
            self._sizes.clear()
            self._spent.clear()

    def _sweep(self, wake: threading.Event) -> None:
        """Give back reservations whose window ended, so a quiet process keeps nothing."""
        while True:
            wake.wait()  # set while anything is held or spent
            time.sleep(WINDOW_S / 2)
            now = time.monotonic()
            with self._lock:
                due = [key for key, held in self._held.items() if held.until <= now]
                expired = [self._held.pop(key) for key in due]
                # Used up and no admit since to say so: give back nothing, off `held`.
                quiet = [key for key, held in self._spent.items() if held.until <= now]
                expired += [self._spent.pop(key) for key in quiet]
                if not self._held and not self._spent:
                    wake.clear()
            for reservation in expired:
                try:
                    self._give_back(reservation)
                except Exception:  # the sweeper must outlive one failure
                    logger.exception("could not give back a reservation")
