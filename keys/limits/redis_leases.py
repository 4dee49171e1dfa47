"""The lease store: exact quotas at Redis speed, with the database as the only authority.

A request's admit is one Lua script in Redis: a token from the bucket and its units from the
subscription's pool, atomically. The pool holds units *leased* from the database: a lease
adds them to `QuotaCounter.used` in a durable commit (keys.limits.leases) before they are
deposited, so the database always counts at least what was delivered, whatever crashes.
One claim per pool (with a deadline) to lease a whole lease; requests that find the pool short
meanwhile lease only what they lack, and a refusal waits for leases still in flight.
Lease sizes adapt: doubled while leases come less than a second apart, halved when
they are rare, capped at `MLAPI_LIMITS_LEASE_FRACTION` of the quota and `MLAPI_LIMITS_LEASE_MAX`;
a quiet subscription leases exactly what each request needs. A pool is shared by every node
and process, so the last units of a period are never stranded in one of them.
See keys.limits.lua for the keys, docs/performance.md for the invariants and their tests.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import redis
from django.db import DatabaseError
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from keys.limits import database, leases, lua, reservations
from keys.limits.base import Limits, LimitsStore, Outcome, Step
from keys.limits.reservations import Reservation, Reservations
from mlapi.exceptions import ServiceUnavailable

logger = logging.getLogger("mlapi.limits")
BUCKET_KEY = "mlapi:bucket:{}"
CLAIM_TTL_S = 2.0  # a leaser that died frees its claim after this
INFLIGHT_TTL_S = 10.0  # a granting lease that died stops holding refusals back after this
WAIT_S = 30.0  # a request refused only while others' leases are in flight retries this long
POLL_S = 0.002
GROW_BELOW_S, SHRINK_ABOVE_S = 1.0, 10.0
SCRIPTS = ("admit", "deposit", "release", "refund", "drain", "granting", "unreserve")
SOURCES = {name: getattr(lua, name.upper()) for name in SCRIPTS}
# EVALSHA names a script by its SHA-1 (Redis's choice; an identifier here, not a safeguard).
SHAS = {
    name: hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
    for name, source in SOURCES.items()
}
OUTCOMES = {
    lua.ADMITTED: Outcome.ADMITTED,
    lua.RATE_LIMITED: Outcome.RATE_LIMITED,
    lua.QUOTA_EXCEEDED: Outcome.QUOTA_EXCEEDED,
}


@dataclass(frozen=True, slots=True)
class Reply:
    """A script's reply (see keys.limits.lua)."""

    code: int
    tokens: float
    units: int  # in the pool, after the step
    out: int  # QuotaCounter.used as of the pool's last lease (-1: never leased)
    limit: int  # quota + extension as of that lease
    lease: int  # 1: this caller holds the claim to lease a whole lease; 2: what it lacks
    size: int
    at: float
    now: float
    before: int  # the pool's high-water mark of `used` before this admit (-1: none admitted)
    held_tokens: int  # a reservation for this process (keys.limits.reservations), if any
    held_units: int

    @classmethod
    def parse(cls, raw) -> Reply:
        code, tokens, units, out, limit, claim, size, at, now, before, held_t, held_u = raw
        return cls(
            int(code), float(tokens), int(units), int(out), int(limit), int(claim),
            int(size), float(at), float(now), int(before), int(held_t), int(held_u),
        )  # fmt: skip


class RedisLeaseStore(LimitsStore):
    """Bucket and pools in Redis (`url`), leases from the database (see module docstring)."""

    name = "redis"

    def __init__(
        self, url: str, *, lease_fraction: float, lease_max: int, reserve_max: int = 0
    ) -> None:
        self.url, self.lease_fraction, self.lease_max = url, lease_fraction, lease_max
        self.reservations = Reservations(self._unreserve, size_max=reserve_max)
        self._lock = threading.Lock()
        self._local = threading.local()  # each thread's own connection
        # Only its settings are used (building it connects to nothing).
        self._pool = redis.ConnectionPool.from_url(
            url,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 0),  # scripts are not all idempotent
        )
        self._connections: list[redis.Connection] = []
        self._pid = os.getpid()

    # --- the interface ---------------------------------------------------------------------

    def admit(self, limits: Limits, *, units: int, now: float) -> Step:
        step = self.reservations.take(limits, units)
        if step is not None:
            return step
        token = secrets.token_hex(8)
        reserve, spent = self.reservations.size_for(limits, units)
        deadline = time.monotonic() + WAIT_S
        while True:
            reply = self._admit(limits, units, token, reserve, spent)
            spent = ""  # said once
            if reply.code == lua.NEED_UNITS and reply.lease:
                reply = self._lease_and_admit(limits, units, reply, token, whole=reply.lease == 1)
            elif reply.code == lua.ADMITTED and reply.lease:
                self._lease_ahead(limits, reply, token)
            if reply.code != lua.NEED_UNITS:
                step = self._step(limits, reply, OUTCOMES[reply.code])
                if reply.held_tokens:
                    self._keep(limits, units, reply, step, token)
                return step
            if time.monotonic() > deadline:
                raise _unavailable(None)
            time.sleep(POLL_S)  # another request is leasing for this pool: wait for it

    def consume(self, limits: Limits, *, units: int) -> Step:
        """In the database, in the caller's transaction; a short database takes the pool back."""
        args = dict(
            subscription_id=limits.subscription_id,
            period_start=limits.period_start,
            units=units,
            quota=limits.quota,
        )
        ok, used, extension = database.consume_quota(**args)
        if not ok:
            ok, used, extension = self._consume_after_draining(limits, args, (ok, used, extension))
        outcome = Outcome.ADMITTED if ok else Outcome.QUOTA_EXCEEDED
        return Step(outcome, float(limits.burst), used, extension)

    def refund(self, limits: Limits, *, units: int, period_start: datetime) -> None:
        if period_start == limits.period_start:
            try:
                if int(self._run("refund", [], [self._suffix(limits), units])):
                    return
            except ServiceUnavailable:
                pass  # the database takes it back
        self._to_database(limits, period_start, units)

    def peek(self, limits: Limits, *, now: float) -> Step:
        """The database's count less the pool (without Redis an upper bound: pooled units count)."""
        try:
            reply = self._release(limits, "-")
            tokens, pooled = reply.tokens, reply.units
        except ServiceUnavailable:
            tokens, pooled = 0.0, 0
        used, extension = database.read_quota(
            subscription_id=limits.subscription_id, period_start=limits.period_start
        )
        # This process's reservations are not delivered either; other processes' count as
        # used until they come back (within 50 ms).
        pooled += self.reservations.units_held(limits)
        return Step(Outcome.ADMITTED, tokens, max(0, used - pooled), extension)

    def close(self) -> None:
        self.reservations.give_back_all()
        with self._lock:
            for connection in self._connections:
                connection.disconnect()
            self._connections.clear()
            self._local = threading.local()

    # --- leases ----------------------------------------------------------------------------

    def _lease_and_admit(
        self, limits: Limits, units: int, reply: Reply, token: str, *, whole: bool
    ) -> Reply:
        """Lease what this request lacks (the claim holder: a whole lease), deposit, admit.

        Requests without the claim lease in parallel (PostgreSQL queues them on the row lock),
        only what they lack: no request waits behind another's lease, and only the claim
        holder can add units beyond what requests need.
        """
        need = units - reply.units
        size = self._next_size(limits, reply) if whole else max(1, reply.size)
        want = max(need, size) if whole else need
        grant = self._lease(limits, reply, token, need=need, want=want)
        return self._deposit(limits, units, grant, size, token, final=grant.units == 0)

    def _lease_ahead(self, limits: Limits, reply: Reply, token: str) -> None:
        """Refill the pool before it runs dry (this request is admitted already)."""
        size = self._next_size(limits, reply)
        try:
            grant = self._lease(limits, reply, token, need=1, want=size)
            self._deposit(limits, 0, grant, size, token, final=False)
        except ServiceUnavailable:
            pass  # the pool still serves; the next request that finds it short leases

    def _lease(self, limits: Limits, reply: Reply, token: str, *, need: int, want: int):
        try:
            return leases.lease(
                subscription_id=limits.subscription_id,
                period_start=limits.period_start,
                quota=limits.quota,
                need=need,
                want=want,
                granting=lambda: self._run(
                    "granting", [], [self._suffix(limits), token, INFLIGHT_TTL_S]
                ),
            )
        except DatabaseError as exc:
            self._release(limits, token)
            raise _unavailable(exc) from exc

    def _deposit(self, limits, units, grant, size, token, *, final: bool) -> Reply:
        args = [
            limits.rate, limits.burst, units, self._suffix(limits), token, secrets.token_hex(8),
            grant.units, grant.used, limits.quota + grant.extension, size, int(final),
            self._pool_ttl(limits),
        ]  # fmt: skip
        return Reply.parse(self._run("deposit", [BUCKET_KEY.format(limits.subscription_id)], args))

    def _next_size(self, limits: Limits, reply: Reply) -> int:
        size = max(1, reply.size)
        if reply.out >= 0 and reply.now - reply.at < GROW_BELOW_S:
            size *= 2
        elif reply.now - reply.at > SHRINK_ABOVE_S:
            size = max(1, size // 2)
        return max(1, min(size, self.lease_max, int(limits.quota * self.lease_fraction)))

    # --- Redis -----------------------------------------------------------------------------

    def _step(self, limits: Limits, reply: Reply, outcome: Outcome) -> Step:
        if reply.out < 0:  # no lease yet in this pool: the database has the figures
            used, extension = database.read_quota(
                subscription_id=limits.subscription_id, period_start=limits.period_start
            )
            return Step(outcome, reply.tokens, max(0, used - reply.units), extension)
        used = max(0, reply.out - reply.units)
        before = reply.before if reply.before >= 0 else None
        return Step(outcome, reply.tokens, used, max(0, reply.limit - limits.quota), before)

    def _admit(
        self, limits: Limits, units: int, token: str, reserve: int = 0, spent: str = ""
    ) -> Reply:
        args = [
            limits.rate, limits.burst, units, self._suffix(limits), token, CLAIM_TTL_S,
            reserve, reservations.HELD_S, reservations.RESERVE_BELOW_PERCENT, spent,
        ]  # fmt: skip
        return Reply.parse(self._run("admit", [BUCKET_KEY.format(limits.subscription_id)], args))

    # --- reservations (keys.limits.reservations) -------------------------------------------

    def _keep(self, limits: Limits, units: int, reply: Reply, step: Step, token: str) -> None:
        self.reservations.keep(
            Reservation(
                token=token,
                limits=limits,
                units_each=units,
                tokens=reply.held_tokens,
                units=reply.held_units,
                used=step.used,
                bucket=reply.tokens - reply.held_tokens,
                extension=step.extension,
                until=time.monotonic() + reservations.WINDOW_S,
            )
        )

    def _unreserve(self, held: Reservation) -> None:
        """Give back what a reservation did not use: tokens to the bucket, units to the pool
        (to the database when this Redis no longer has the pool). Lost if Redis cannot be
        reached: under-admission, never more."""
        limits = held.limits
        keys = [BUCKET_KEY.format(limits.subscription_id)]
        suffix = self._suffix(limits)
        args = [limits.rate, limits.burst, suffix, held.token, held.tokens, held.units, held.used]
        try:
            pooled = int(self._run("unreserve", keys, args))
        except ServiceUnavailable:
            return
        if not pooled and held.units:
            self._to_database(limits, limits.period_start, held.units)

    # --- back to the database --------------------------------------------------------------

    def _consume_after_draining(self, limits: Limits, args: dict, short: tuple) -> tuple:
        """The database could not cover a batch: this process's reservations go back, the
        pool's units go back to the database, and the batch tries again, as long as other
        processes' reservations may still come back (within `HELD_S`)."""
        self.reservations.give_back_all()
        deadline, result = time.monotonic() + reservations.HELD_S, short
        while True:
            drained, holders = (int(n) for n in self._run("drain", [], [self._suffix(limits)]))
            if drained:
                self._to_database(limits, limits.period_start, drained)
                result = database.consume_quota(**args)
            if result[0] or not holders or time.monotonic() > deadline:
                return result
            time.sleep(POLL_S)  # other processes' reservations come back within 50 ms

    @staticmethod
    def _to_database(limits: Limits, period_start: datetime, units: int) -> None:
        leases.give_back(
            subscription_id=limits.subscription_id, period_start=period_start, units=units
        )

    def _release(self, limits: Limits, token: str) -> Reply:
        args = [limits.rate, limits.burst, self._suffix(limits), token]
        return Reply.parse(self._run("release", [BUCKET_KEY.format(limits.subscription_id)], args))

    def _run(self, script: str, keys: list, args: list):
        """EVALSHA on this thread's own connection (no pool, no client layers: this is the one
        Redis round trip of every metered request). NOSCRIPT loads the script and runs it once
        more, which is safe because a NOSCRIPT reply means nothing ran."""
        connection = self._connection()
        command = ("EVALSHA", SHAS[script], len(keys), *keys, *args)
        try:
            try:
                connection.send_command(*command)
                return connection.read_response()
            except NoScriptError:
                connection.send_command("SCRIPT", "LOAD", SOURCES[script])
                connection.read_response()
                connection.send_command(*command)
                return connection.read_response()
        except redis.RedisError as exc:  # the connection closed itself if it broke
            raise _unavailable(exc) from exc

    def _connection(self) -> redis.Connection:
        if self._pid != os.getpid():  # a forked child never shares its parent's sockets
            self._local, self._connections, self._pid = threading.local(), [], os.getpid()
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._pool.connection_class(**self._pool.connection_kwargs)
            with self._lock:
                self._connections.append(connection)
            self._local.connection = connection
        return connection

    @staticmethod
    def _suffix(limits: Limits) -> str:
        return f"{limits.subscription_id}:{int(limits.period_start.timestamp())}:{limits.quota}"

    @staticmethod
    def _pool_ttl(limits: Limits) -> int:
        return max(60, int(limits.period_end.timestamp() - time.time()) + 3600)


def _unavailable(exc: Exception | None) -> ServiceUnavailable:
    logger.warning("limits store unavailable: %s", exc or "waited too long for leases")
    return ServiceUnavailable(
        "The limits store is unavailable; try again shortly.", headers={"Retry-After": "1"}
    )
