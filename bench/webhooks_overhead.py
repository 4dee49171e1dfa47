"""Predict-path cost of the webhook hook (quota.threshold detection), in process.

    .venv/bin/python bench/webhooks_overhead.py [--requests 3000] [--rounds 5]

Two metered views answer the same tiny JSON POST through API-key auth + admit(units=1):

  metered-unhooked  `limits.admit` only (what MeteredAPIView.admit did before issue 15)
  metered-hooked    the real `MeteredAPIView.admit` (+ `keys.events.note_admitted`), on an
                    organization with 3 webhook endpoints subscribed to every event

Rounds alternate the order; medians of per-round means. Also: `note_admitted` alone when
nothing is crossed (pure arithmetic, the cost on every request), and when a threshold is
crossed (one outbox INSERT ... ON CONFLICT DO NOTHING, commit, dispatcher wake-up on the
broker: paid three times per subscription and period).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import timeit
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.limits_overhead import make_credentials, run, setup_django  # noqa: E402


def build_views():
    from rest_framework.response import Response

    from keys import limits
    from keys.views import MeteredAPIView

    class Hooked(MeteredAPIView):
        consumes_quota = True

        def post(self, request):
            self.admit(request, units=len(request.data["instances"]))
            return Response({"n": 1})

    class Unhooked(Hooked):
        def admit(self, request, *, units: int) -> None:
            # RequestMeter.admit without its keys.events.note_admitted call: the cost compared.
            meter = self.meter
            meter._limit(lambda p: limits.admit(principal=p, units=units))
            meter.admitted = (units, meter.limit_state.period_start)

    return {"metered-unhooked": Unhooked.as_view(), "metered-hooked": Hooked.as_view()}


def add_endpoints(key: str) -> None:
    from events.services import SUBSCRIBABLE
    from keys.models import ApiKey
    from webhooks.services import create_webhook_endpoint

    api_key = ApiKey.objects.select_related("subscription__organization").get(
        prefix=key.split(".")[0].removeprefix("mlk_")
    )
    for i in range(3):
        create_webhook_endpoint(
            organization=api_key.subscription.organization,
            url=f"https://example.com/hook/{i}",
            events=list(SUBSCRIBABLE),
        )


def crossing_cost(samples: int) -> float:
    """Mean seconds of note_admitted on a crossing (a fresh subscription each time)."""
    from datetime import UTC, datetime

    from keys.events import note_admitted
    from keys.limits import LimitState, period_bounds
    from keys.principal import PlanSnapshot, Principal

    plan = PlanSnapshot(1, "b", 1.0, 1, 1000, "day", 1, 1, True, frozenset())
    start, end = period_bounds("day", datetime.now(UTC))
    total = 0.0
    for i in range(samples):
        principal = Principal(10**9 + i, 1, None, "active", plan, organization_id=1)
        state = LimitState(1.0, 1, 1.0, 1000, 800, start, end, time.time(), 799)
        began = time.perf_counter()
        note_admitted(principal=principal, state=state)
        total += time.perf_counter() - began
    return total / samples


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    setup_django()
    from django.db import connection
    from django.test import RequestFactory

    from keys.events import note_admitted
    from keys.limits import LimitState
    from keys.principal import PlanSnapshot, Principal

    views = build_views()
    key, _ = make_credentials()
    add_endpoints(key)
    headers = {"HTTP_X_API_KEY": key}
    factory = RequestFactory()
    means: dict[str, list[float]] = {name: [] for name in views}
    for round_no in range(args.rounds):
        order = list(views) if round_no % 2 == 0 else list(reversed(views))
        for name in order:
            means[name].append(run(views[name], factory, headers, args.requests))
    median = {k: round(statistics.median(v) * 1e6, 1) for k, v in means.items()}
    plan = PlanSnapshot(1, "b", 1.0, 1, 10**9, "day", 1, 1, True, frozenset())
    principal = Principal(1, 1, None, "active", plan, organization_id=1)
    state = LimitState(1.0, 1, 1.0, 10**9, 5, None, None, 0.0, 4)
    loops = 200_000
    no_cross = timeit.timeit(lambda: note_admitted(principal=principal, state=state), number=loops)
    result = {
        "database": connection.vendor,
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "median_us": median,
        "hook_overhead_us": round(median["metered-hooked"] - median["metered-unhooked"], 1),
        "ratio": round(median["metered-hooked"] / median["metered-unhooked"], 3),
        "note_admitted_no_crossing_us": round(no_cross / loops * 1e6, 3),
        "note_admitted_crossing_us": round(crossing_cost(30) * 1e6, 1),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
