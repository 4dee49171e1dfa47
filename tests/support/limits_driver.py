"""A stand-alone process that spends one subscription's quota, for tests that crash a store.

    python -m tests.support.limits_driver setup QUOTA   -> migrates, prints the new subscription id
    python -m tests.support.limits_driver spend SUB_ID THREADS

(from the project directory).

Runs with DATABASE_URL / REDIS_URL of the test's private instances. `spend` prints one line
per admitted request, `ok <units>`, flushed at once (a prediction delivered), and `503` for
a refusal because a store was unreachable; it keeps trying until the quota is refused for a
single unit, then prints `done`. Database errors close the thread's connection, so the next
try reconnects (as a web worker does between requests).
"""

from __future__ import annotations

import os
import random
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapi.settings")

_print_lock = threading.Lock()


def say(line: str) -> None:
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def setup(quota: int) -> None:
    from django.core.management import call_command

    from tests.factories import PlanFactory, SubscriptionFactory

    call_command("migrate", verbosity=0)
    plan = PlanFactory(rate=1e6, burst=10**9, quota=quota, quota_period="month")
    say(str(SubscriptionFactory(plan=plan).pk))


def spend(subscription_id: int, threads: int) -> None:
    import time

    from django.db import connection

    from keys import limits
    from keys.models import Subscription
    from keys.principal import Principal
    from mlapi.exceptions import ServiceUnavailable

    subscription = Subscription.objects.select_related("plan").get(pk=subscription_id)
    principal = Principal.for_subscription(subscription)
    connection.close()

    def run() -> None:
        rng = random.Random()
        size = None
        while True:
            units = size or rng.randint(1, 3)
            try:
                limits.admit(principal=principal, units=units)
            except limits.QuotaExceeded:
                if units == 1:
                    return
                size = 1
                continue
            except ServiceUnavailable:
                say("503")
                connection.close()
                time.sleep(0.05)
                continue
            say(f"ok {units}")

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    say("done")


def main(argv: list[str]) -> None:
    import django

    django.setup()
    if argv[0] == "setup":
        setup(int(argv[1]))
    else:
        spend(int(argv[1]), int(argv[2]))


if __name__ == "__main__":
    main(sys.argv[1:])
