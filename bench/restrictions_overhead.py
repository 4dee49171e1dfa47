"""Hot-path cost of §10 key restrictions, in microseconds per request, in-process.

    .venv/bin/python bench/restrictions_overhead.py [--calls 100000] [--rounds 5]

Times `predictions.dataplane.check_key_restrictions` (what every protocol's call runs) on a
request meter carrying a cached `Principal`, for keys that are unrestricted (the common case: one
identity check), restricted by model + scope, and restricted by model + scope + 3 CIDRs +
an origin (client IP worked out from the meter's peer address each call). A call to an empty
function is the baseline. Also counts the database queries of a warm authenticated request with
a fully restricted key (must be 0: the restrictions travel on the cached key), and times parsing a
key's restrictions on a cache miss (`KeyRestrictions.from_key`, once per key per second).
Medians of the per-round means; the box is shared, so compare rows of the same run only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


def setup_django() -> None:
    os.environ.setdefault("MLAPI_DATA_DIR", tempfile.mkdtemp(prefix="mlapi-bench-restr-"))
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-" + os.urandom(24).hex())
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapi.settings")
    os.environ.setdefault("MLAPI_USAGE_RECORDING", "off")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def per_call_us(fn, calls: int, rounds: int) -> float:
    means = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        means.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(means)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from keys import keycache
    from keys.models import ApiKey, Plan
    from keys.principal import KeyRestrictions
    from keys.services import create_api_key, subscribe
    from mlapi import protocols
    from predictions import dataplane

    user = get_user_model().objects.create_user(username="bench", email="b@example.com")
    subscription = subscribe(user=user, plan=Plan.objects.get(name="pro"))
    keys = {
        "unrestricted": {},
        "model+scope": {"models": ["iris"], "scopes": ["predict"]},
        "model+scope+ip+origin": {
            "models": ["iris"],
            "scopes": ["predict"],
            "allowed_ips": ["10.0.0.0/8", "192.168.0.0/16", "203.0.113.0/24"],
            "allowed_origins": ["https://app.example.com"],
        },
    }
    rows = []

    def noop(meter, *, scope, model=None):
        return None

    for label, restrictions in keys.items():
        _, plaintext = create_api_key(subscription=subscription, restrictions=restrictions)
        meter = dataplane.start_call(protocol=protocols.V1, method="POST", path="/predict")
        meter.peer, meter.origin = "203.0.113.7", "https://app.example.com"
        keycache.clear()
        dataplane.authenticate(meter, api_key=plaintext, authorization=None)  # warm the cache
        with CaptureQueriesContext(connection) as queries:
            dataplane.authenticate(meter, api_key=plaintext, authorization=None)
            dataplane.check_key_restrictions(meter, scope="predict", model="iris")
        call = lambda m=meter, check=dataplane.check_key_restrictions: check(  # noqa: E731
            m, scope="predict", model="iris"
        )
        base = lambda m=meter: noop(m, scope="predict", model="iris")  # noqa: E731
        rows.append((label, per_call_us(call, args.calls, args.rounds),
                     per_call_us(base, args.calls, args.rounds), len(queries)))  # fmt: skip
    api_key = ApiKey.objects.order_by("-id").first()
    parse_us = per_call_us(lambda: KeyRestrictions.from_key(api_key), 20_000, args.rounds)
    print(f"{'key':<24} {'check µs':>9} {'noop µs':>8} {'extra µs':>9} {'warm queries':>13}")
    for label, cost, base, n in rows:
        print(f"{label:<24} {cost:9.3f} {base:8.3f} {cost - base:9.3f} {n:13d}")
    print(f"KeyRestrictions.from_key (cache miss, once per key per second): {parse_us:.2f} µs")
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
