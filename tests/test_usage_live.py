"""Usage is exact under concurrent mixed load, and survives a SIGTERM to gunicorn under load."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from keys.limits import quota_status
from keys.models import QuotaCounter
from tests.servers import database_url, free_port
from tests.support.usage import make_subscription
from usage.models import DailyUsage, UsageRecord, latency_bucket
from usage.recording import flush_usage

BASE_DIR = Path(__file__).resolve().parent.parent


def post(base: str, model: str, body: bytes, sub_id: int, key_id: int | None) -> int:
    headers = {"Content-Type": "application/json", "X-Test-Sub": str(sub_id)}
    if key_id:
        headers["X-Test-Key"] = str(key_id)
    request = urllib.request.Request(  # noqa: S310 - http to the local test server
        f"{base}/api/v1/models/{model}/predict", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def usage_totals(client: Client, start: str, end: str, **filters) -> dict:
    response = client.get("/api/v1/usage", {"start": start, "end": end, **filters})
    assert response.status_code == 200, response.content
    items = response.json()["results"]
    totals = {
        f: sum(i[f] for i in items) for f in ("requests", "predictions", "errors", "throttled")
    }
    return {**totals, "last": items[-1]}


@pytest.mark.slow
@pytest.mark.urls("tests.support.usage")
def test_usage_api_is_exact_under_concurrent_mixed_load(live_server, transactional_db, settings):
    settings.MLAPI_USAGE_MODE = "buffered"  # the background writer, as in production
    sub, (k1, k2) = make_subscription(rate=60, burst=20, quota=500, period="month")
    day_before = datetime.now(UTC).date().isoformat()
    sent: list[tuple[int, int, int | None, str]] = []  # (status, n, key_id, model)
    lock = threading.Lock()

    def client_thread(seed: int) -> None:
        rng = random.Random(seed)
        for i in range(40):
            key_id = rng.choice([k1.pk, k2.pk, None])
            model = rng.choice(["iris", "house-price"])
            n = rng.randint(1, 4)
            body = json.dumps({"n": n}).encode()
            if i % 9 == 4:
                body, n = b'{"n": 0}', 0  # 400 validation_error
            elif i % 11 == 6:
                body, n = b"{not json", 0  # 400 invalid_json
            status = post(live_server.url, model, body, sub.pk, key_id)
            with lock:
                sent.append((status, n, key_id, model))

    threads = [threading.Thread(target=client_thread, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flush_usage()

    statuses = Counter(s for s, *_ in sent)
    assert len(sent) == 320 and statuses[429] > 0 and statuses[400] > 0 and statuses[200] > 0

    def expected(rows):
        return {
            "requests": len(rows),
            "predictions": sum(n for s, n, *_ in rows if s == 200),
            "errors": sum(1 for s, *_ in rows if s >= 400 and s != 429),
            "throttled": sum(1 for s, *_ in rows if s == 429),
        }

    client = Client()
    client.force_login(sub.user)
    today = datetime.now(UTC).date().isoformat()
    totals = usage_totals(client, day_before, today)
    want = expected(sent)
    assert {k: totals[k] for k in want} == want
    counter = QuotaCounter.objects.get(subscription=sub)
    assert totals["last"]["quota_used"] == want["predictions"] == counter.used
    assert totals["last"]["quota_remaining"] == 500 - counter.used

    for filters, rows in [
        ({"model": "iris"}, [r for r in sent if r[3] == "iris"]),
        ({"key": k1.pk}, [r for r in sent if r[2] == k1.pk]),
        (
            {"key": k2.pk, "model": "house-price"},
            [r for r in sent if r[2:] == (k2.pk, "house-price")],
        ),
    ]:
        got = usage_totals(client, day_before, today, **filters)
        assert {k: got[k] for k in want} == expected(rows), filters

    latencies = list(
        UsageRecord.objects.filter(subscription=sub).values_list("latency_ms", flat=True)
    )
    assert len(latencies) == 320
    if day_before == today:
        for q, field in ((0.5, "p50_ms"), (0.95, "p95_ms")):
            assert latency_bucket(totals["last"][field]) == latency_bucket(
                nearest_rank(latencies, q)
            )


def wait_until_up(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn exited during start-up"
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):  # noqa: S310
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("gunicorn did not come up")


@pytest.mark.slow
def test_no_usage_is_lost_across_sigterm_to_gunicorn_under_load(transactional_db, tmp_path):
    sub, (key, _) = make_subscription()
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mlapi.settings",
        "MLAPI_TESTING": "1",
        "DATABASE_URL": database_url(),
        "MLAPI_DATA_DIR": str(settings.DATA_DIR),
        "MLAPI_USAGE_MODE": "buffered",
        # Nothing is written before shutdown: the exit flush alone must save every record.
        "MLAPI_USAGE_FLUSH_INTERVAL_S": "600",
        "MLAPI_USAGE_FLUSH_SIZE": "1000000",
    }
    command = [sys.executable, "-m", "gunicorn", "tests.support.usage_wsgi:application"]
    command += ["-c", str(BASE_DIR / "mlapi/gunicorn_conf.py"), "--workers", "2"]
    command += ["--bind", f"127.0.0.1:{port}", "--control-socket", str(tmp_path / "ctl")]
    server = subprocess.Popen(command, cwd=BASE_DIR, env=env)
    base = f"http://127.0.0.1:{port}"
    answered: list[int] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                status = post(base, "iris", b'{"n": 2}', sub.pk, key.pk)
            except OSError:
                return  # refused or reset: not answered, so not metered
            answered.append(status)

    try:
        wait_until_up(base, server)
        threads = [threading.Thread(target=load) for _ in range(8)]
        for t in threads:
            t.start()
        while len(answered) < 200:
            time.sleep(0.02)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        stop.set()
        for t in threads:
            t.join()
    finally:
        stop.set()
        if server.poll() is None:
            server.kill()
    assert len(answered) >= 200
    assert UsageRecord.objects.filter(subscription=sub).count() == len(answered)
    rollup = DailyUsage.objects.filter(subscription=sub)
    assert sum(r.requests for r in rollup) == len(answered)
    assert sum(r.predictions for r in rollup) == 2 * answered.count(200)


IRIS = [5.1, 3.5, 1.4, 0.2]
HOUSE = {"property_type": "D", "old_new": "N", "duration": "F"}


def real_request(base: str, route: str, n: int) -> tuple[str, str]:
    """(url, body) for one of the real data-plane routes, asking for n predictions."""
    if route == "v1":
        return f"{base}/api/v1/models/iris/predict", json.dumps({"instances": [IRIS] * n})
    if route == "v1-house":
        return f"{base}/api/v1/models/house-price/predict", json.dumps({"instances": [HOUSE] * n})
    if route == "v2":
        tensor = {"name": "input-0", "shape": [n, 4], "datatype": "FP64", "data": IRIS * n}
        return f"{base}/v2/models/iris/infer", json.dumps({"inputs": [tensor]})
    if route == "kserve":
        return f"{base}/v1/models/iris:predict", json.dumps({"instances": [IRIS] * n})
    bad = [[IRIS[0], IRIS[1], 999.0, IRIS[3]]] * n  # out of range: 400 validation_error
    return f"{base}/api/v1/models/iris/predict", json.dumps({"instances": bad})


@pytest.mark.slow
def test_usage_is_exact_for_the_real_data_plane_routes_under_load(
    live_server, live_demo_models, settings
):
    settings.MLAPI_USAGE_MODE = "buffered"
    import requests
    from rest_framework_simplejwt.tokens import RefreshToken

    from tests.factories import ApiKeyFactory, PlanFactory, SubscriptionFactory

    plan = PlanFactory(rate=50.0, burst=15, quota=450, quota_period="month")
    sub = SubscriptionFactory(plan=plan)
    keys = [ApiKeyFactory(subscription=sub) for _ in range(2)]
    jwt = str(RefreshToken.for_user(sub.user).access_token)
    creds = [(k.pk, {"X-API-Key": k.plaintext}) for k in keys]
    creds.append((None, {"Authorization": f"Bearer {jwt}"}))
    day_before = datetime.now(UTC).date().isoformat()
    sent: list[tuple[int, int, int | None, str]] = []
    lock = threading.Lock()
    routes = ["v1", "v1", "v2", "kserve", "v1-house", "bad"]

    def client_thread(seed: int) -> None:
        rng = random.Random(seed)
        with requests.Session() as session:
            for _ in range(40):
                key_id, headers = rng.choice(creds)
                route, n = rng.choice(routes), rng.randint(1, 4)
                url, body = real_request(live_server.url, route, n)
                response = session.post(
                    url, data=body, headers={**headers, "Content-Type": "application/json"}
                )
                model = "house-price" if route == "v1-house" else "iris"
                with lock:
                    sent.append((response.status_code, n, key_id, model))

    threads = [threading.Thread(target=client_thread, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flush_usage()

    statuses = Counter(s for s, *_ in sent)
    assert len(sent) == 320 and statuses[429] and statuses[400] and statuses[200], statuses
    want = {
        "requests": len(sent),
        "predictions": sum(n for s, n, *_ in sent if s == 200),
        "errors": sum(1 for s, *_ in sent if s >= 400 and s != 429),
        "throttled": statuses[429],
    }
    client = Client()
    client.force_login(sub.user)
    today = datetime.now(UTC).date().isoformat()
    totals = usage_totals(client, day_before, today)
    assert {k: totals[k] for k in want} == want
    # The quota as the limits store reports it (with the Redis lease store the counter row also
    # holds units leased into the pool but not yet delivered).
    used = quota_status(subscription=sub).used
    assert totals["last"]["quota_used"] == want["predictions"] == used
    assert totals["last"]["quota_remaining"] == 450 - used
    for key in keys:
        mine = [r for r in sent if r[2] == key.pk]
        got = usage_totals(client, day_before, today, key=key.pk)
        assert (got["requests"], got["throttled"]) == (len(mine), sum(r[0] == 429 for r in mine))
    protocols = set(UsageRecord.objects.filter(subscription=sub).values_list("protocol", flat=True))
    assert protocols == {"v1", "v2", "kserve-v1"}
