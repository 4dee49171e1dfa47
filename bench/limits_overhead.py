"""Per-request cost of authentication + limits, against the same view with them off.

    .venv/bin/python bench/limits_overhead.py [--requests 3000] [--rounds 5] [--out FILE]

In-process, no HTTP server and no middleware, so only what keys adds is measured. Four DRF
views answer the same tiny JSON POST (parse the body, return a small JSON reply):

  bare         no authentication, no permission, no limits
  auth         API key authentication (X-API-Key, cached lookups) + ActiveSubscription
  metered      `keys.views.MeteredAPIView`: auth + admit(units=1) (token + quota) + headers
  metered-jwt  the same with `Authorization: Bearer <JWT>` instead of the key

Rounds alternate the order; the median of the per-round means is reported, with the database
queries one warm request makes. Uses a fresh SQLite data dir unless DATABASE_URL (and
REDIS_URL for the Redis bucket) are set, in which case it migrates that database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


def setup_django() -> None:
    os.environ.setdefault("MLAPI_DATA_DIR", tempfile.mkdtemp(prefix="mlapi-bench-limits-"))
    os.environ.setdefault("DJANGO_DEBUG", "0")  # production settings: no query logging
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-" + os.urandom(24).hex())
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapi.settings")
    os.environ.setdefault("MLAPI_USAGE_RECORDING", "off")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build_views():
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from keys.authentication import ApiKeyAuthentication, SubscriberJWTAuthentication
    from keys.permissions import ActiveSubscription
    from keys.views import MeteredAPIView

    class Bare(APIView):
        authentication_classes: list = []
        permission_classes = [AllowAny]

        def post(self, request):
            return Response({"n": len(request.data["instances"])})

    class AuthOnly(Bare):
        authentication_classes = [ApiKeyAuthentication, SubscriberJWTAuthentication]
        permission_classes = [ActiveSubscription]

    class Metered(MeteredAPIView):
        consumes_quota = True

        def post(self, request):
            n = len(request.data["instances"])
            self.admit(request, units=n)
            return Response({"n": n})

    return {
        "bare": Bare.as_view(),
        "auth": AuthOnly.as_view(),
        "metered": Metered.as_view(),
        "metered-jwt": Metered.as_view(),
    }


def make_credentials() -> tuple[str, str]:
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import RefreshToken

    from keys.models import Plan
    from keys.services import create_api_key, subscribe

    plan, _ = Plan.objects.get_or_create(
        name="bench-limits",
        defaults=dict(
            rate=1e9,
            burst=10**9,
            quota=10**15,
            quota_period="month",
            max_instances=1000,
            max_job_rows=1000,
        ),
    )
    user = get_user_model().objects.create_user(
        username=f"bench-{time.time_ns()}", email=f"bench-{time.time_ns()}@example.com"
    )
    subscription = subscribe(user=user, plan=plan, approved=True)
    _, key = create_api_key(subscription=subscription, name="bench")
    return key, str(RefreshToken.for_user(user).access_token)


def run(view, factory, headers: dict, n: int) -> float:
    body = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
    started = time.perf_counter()
    for _ in range(n):
        request = factory.post("/bench", body, content_type="application/json", **headers)
        response = view(request)
        if response.status_code != 200:
            raise SystemExit(f"unexpected {response.status_code}: {response.content[:200]!r}")
    return (time.perf_counter() - started) / n


def queries_per_request(view, factory, headers: dict) -> list[str]:
    from django.db import connection

    seen: list[str] = []

    def capture(execute, sql, params, many, context):
        seen.append(" ".join(sql.split())[:90])
        return execute(sql, params, many, context)

    run(view, factory, headers, 3)  # warm the key cache
    with connection.execute_wrapper(capture):
        run(view, factory, headers, 1)
    return seen


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    setup_django()
    from django.conf import settings
    from django.db import connection
    from django.test import RequestFactory

    views = build_views()
    key, access = make_credentials()
    headers = {
        "bare": {},
        "auth": {"HTTP_X_API_KEY": key},
        "metered": {"HTTP_X_API_KEY": key},
        "metered-jwt": {"HTTP_AUTHORIZATION": f"Bearer {access}"},
    }
    factory = RequestFactory()
    means: dict[str, list[float]] = {name: [] for name in views}
    for round_no in range(args.rounds):
        order = list(views) if round_no % 2 == 0 else list(reversed(views))
        for name in order:
            means[name].append(run(views[name], factory, headers[name], args.requests))
    result = {
        "database": connection.vendor,
        "bucket": "redis" if settings.REDIS_URL else "database",
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "median_us": {k: round(statistics.median(v) * 1e6, 1) for k, v in means.items()},
        "warm_queries": {k: queries_per_request(views[k], factory, headers[k]) for k in views},
    }
    bare = result["median_us"]["bare"]
    result["overhead_us"] = {k: round(v - bare, 1) for k, v in result["median_us"].items()}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
