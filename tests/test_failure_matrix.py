"""Failure matrix on a live gunicorn: every endpoint class x every store going away.

For each store (database, Redis cache and limiter, broker, object storage) one server runs on a
store of the test's own that the test takes away and brings back: the database through a TCP
relay that drops every connection (PostgreSQL only; SQLite is a file and cannot go away), Redis
and the broker as a redis-server of this test's own that is stopped and started, object storage
as moto's S3 server behind a proxy that refuses and cuts every connection. A gRPC server runs
beside gunicorn on the same stores, so the data plane is probed on every protocol. While the
store is gone every endpoint class answers within seconds with either its usual status or a 503
in its contract shape (problem+json under /api/, `{"error"}` on the protocol routes but V2
readiness's own `{"ready": false}`, a plain page in the portal and admin, UNAVAILABLE on gRPC),
never a 500; the classes that need the store (the contract's "quota never fails open") answer
503. Once the store is back every endpoint answers as before, without a restart. The observed
matrix is printed (pytest -s) for the operator's notes.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import pytest
import requests
from tritonclient.grpc import service_pb2_grpc

from keys.models import QuotaCounter
from predictions.models import BatchJob
from tests.factories import (
    TEST_PASSWORD,
    ApiKeyFactory,
    PlanFactory,
    SubscriptionFactory,
    seeded_plan,
)
from tests.servers import GrpcServer, GunicornServer, database_url
from tests.support.grpc_calls import call, iris_request
from tests.support.jobs import copy_artifacts_to_bucket
from tests.support.objectstore import FaultyProxy, MotoServer, storage_env
from tests.support.problems import TRACE_MARKERS, assert_problem
from tests.support.stores import RedisProcess, Relay, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

IRIS = [5.1, 3.5, 1.4, 0.2]
TIMEOUT_S = 10.0  # an answer slower than this is a hang
_signups = itertools.count()


@dataclass
class Client:
    """What the probes need: an API key, JWTs, a portal session and a CSRF token."""

    url: str
    key: str
    username: str
    access: str = ""
    refresh: str = ""
    portal: requests.Session = field(default_factory=requests.Session)
    anonymous: requests.Session = field(default_factory=requests.Session)

    def csrf(self, session: requests.Session) -> str:
        return session.cookies.get("csrftoken", "")


@dataclass(frozen=True)
class Probe:
    """One endpoint class: a request, its usual status, the stores it cannot answer without."""

    name: str
    method: str
    path: str
    ok: tuple[int, ...]
    needs: frozenset[str] = frozenset()
    request: Callable[[Client], dict] = lambda c: {}
    session: str = "none"  # none | portal | anonymous (requests.Session to use)


def key(c: Client) -> dict:
    return {"headers": {"X-API-Key": c.key}}


def bearer(c: Client) -> dict:
    return {"headers": {"Authorization": f"Bearer {c.access}"}}


def signup(c: Client) -> dict:
    n = next(_signups)
    return {
        "json": {"username": f"mx{n}-{c.key[4:10]}", "email": f"mx{n}@example.com",
                 "password": TEST_PASSWORD},
        "headers": {"X-Forwarded-For": f"10.{n // 250 % 250}.{n % 250}.1"},
    }  # fmt: skip


def portal_login(c: Client) -> dict:
    token = c.csrf(c.anonymous)
    return {
        "data": {"username": c.username, "password": TEST_PASSWORD,
                 "csrfmiddlewaretoken": token},
        "allow_redirects": False,
    }  # fmt: skip


DATA = frozenset({"database", "cache"})  # the limits live in the database and (rate) Redis
# Predictions with Redis: units already leased from the database into the Redis pool are served
# (exactly) while the database is away, so a predict may answer 200 or 503 then, never a 500.
PREDICT = frozenset({"cache"})
PROBES = [
    Probe("v1 predict", "POST", "/api/v1/models/iris/predict", (200,), PREDICT,
          lambda c: {**key(c), "json": {"instances": [IRIS]}}),
    Probe("V2 REST infer", "POST", "/v2/models/iris/infer", (200,), PREDICT,
          lambda c: {**key(c), "json": {"inputs": [
              {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": IRIS}]}}),
    Probe("V2 health ready", "GET", "/v2/health/ready", (200,), frozenset({"database"})),
    Probe("KServe V1 alias", "POST", "/v1/models/iris:predict", (200,), PREDICT,
          lambda c: {**key(c), "json": {"instances": [IRIS]}}),
    Probe("jobs submit", "POST", "/api/v1/jobs", (202,), DATA | {"broker", "objects"},
          lambda c: {**key(c), "json": {"model": "iris", "instances": [IRIS] * 3}}),
    Probe("jobs list", "GET", "/api/v1/jobs", (200,), frozenset({"database"}), key),
    Probe("signup", "POST", "/api/v1/auth/signup", (201,), frozenset({"database"}), signup),
    Probe("token", "POST", "/api/v1/auth/token", (200,), frozenset({"database"}),
          lambda c: {"json": {"username": c.username, "password": TEST_PASSWORD}}),
    Probe("token refresh", "POST", "/api/v1/auth/token/refresh", (200,),
          frozenset({"database"}), lambda c: {"json": {"refresh": c.refresh}}),
    Probe("plans", "GET", "/api/v1/plans", (200,), frozenset({"database"})),
    Probe("me", "GET", "/api/v1/me", (200,), frozenset({"database"}), bearer),
    Probe("keys list", "GET", "/api/v1/keys", (200,), frozenset({"database"}), bearer),
    Probe("usage", "GET", "/api/v1/usage", (200,), frozenset({"database"}), bearer),
    Probe("portal dashboard", "GET", "/portal/dashboard/", (200,), frozenset({"database"}),
          session="portal"),
    Probe("portal login", "POST", "/portal/login/", (302,), frozenset({"database"}),
          portal_login, session="anonymous"),
    Probe("admin login", "POST", "/admin/login/?next=/admin/", (302,),
          frozenset({"database"}), portal_login, session="anonymous"),
    Probe("healthz", "GET", "/healthz", (200,)),
    Probe("readyz", "GET", "/readyz", (200,), frozenset({"database", "cache", "broker"})),
]  # fmt: skip


def send(client: Client, probe: Probe) -> requests.Response:
    session = {"portal": client.portal, "anonymous": client.anonymous}.get(probe.session)
    sender = session.request if session is not None else requests.request
    if probe.session == "anonymous":
        client.anonymous.cookies.pop("sessionid", None)  # each login starts signed out
    response = sender(probe.method, client.url + probe.path, timeout=TIMEOUT_S,
                      **probe.request(client))  # fmt: skip
    if probe.name == "token refresh" and response.status_code == 200:
        client.refresh = response.json()["refresh"]  # rotated: the old one is blacklisted
    return response


def describe(response: requests.Response) -> str:
    kind = response.headers.get("Content-Type", "").split(";")[0]
    try:
        code = response.json().get("code") if "json" in kind else None
    except ValueError:
        code = None
    return f"{response.status_code} {code or kind}"


def check_during_outage(store: str, probe: Probe, response: requests.Response) -> None:
    """Never a 500: the usual answer, or a 503 in the route's shape (required if it needs it)."""
    status = response.status_code
    if probe.name == "readyz" and store in probe.needs:  # not objects: §1 names its components
        assert status == 503 and response.json()["components"][store]["status"] == "unavailable"
        return
    if store in probe.needs:
        assert status == 503, f"{probe.name}: {describe(response)} {response.text[:500]}"
    assert status in (*probe.ok, 503), f"{probe.name}: {describe(response)} {response.text[:500]}"
    if status == 503 and probe.path == "/v2/health/ready":  # a health reply keeps its shape
        assert response.json() == {"ready": False}, response.text[:500]
    elif status == 503 and probe.path.startswith(("/api/", "/v2", "/v1/models/")):
        assert_problem(response, 503, "service_unavailable")
    assert not any(marker in response.text for marker in TRACE_MARKERS), response.text[:2000]


def grpc_infer(address: str, key: str) -> tuple[grpc.StatusCode, str]:
    """One iris ModelInfer on the gRPC data plane: (status, message)."""
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        _, code, details, *_ = call(stub, iris_request(), key, timeout=TIMEOUT_S)
    return code, details or ""


def check_grpc_during_outage(store: str, code: grpc.StatusCode, details: str) -> None:
    """gRPC's shape of the same rule: OK, or UNAVAILABLE `service_unavailable: ...`; never
    INTERNAL, UNKNOWN or a blown deadline (a hang)."""
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE), (code, details)
    if store in PREDICT:
        assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
    if code == grpc.StatusCode.UNAVAILABLE:
        assert details.startswith("service_unavailable: "), details


def prepare(url: str, username: str, key_text: str) -> Client:
    client = Client(url=url, key=key_text, username=username)
    credentials = {"username": username, "password": TEST_PASSWORD}
    tokens = requests.post(f"{url}/api/v1/auth/token", json=credentials, timeout=TIMEOUT_S).json()
    client.access, client.refresh = tokens["access"], tokens["refresh"]
    client.anonymous.get(f"{url}/portal/login/", timeout=TIMEOUT_S)  # sets the CSRF cookie
    client.portal.get(f"{url}/portal/login/", timeout=TIMEOUT_S)
    form = {**credentials, "csrfmiddlewaretoken": client.csrf(client.portal)}
    login = client.portal.post(
        f"{url}/portal/login/", data=form, timeout=TIMEOUT_S, allow_redirects=False
    )
    assert login.status_code == 302, login.text[:500]
    return client


class Store:
    """How to run a server on a store of this test's own and take it away."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.redis = RedisProcess() if name in ("cache", "broker") else None
        self.relay: Relay | None = None
        self.s3: MotoServer | None = None
        self.proxy: FaultyProxy | None = None

    def server_env(self) -> dict[str, str]:
        # The embedded broker (a file in the data dir) unless the broker is the store under
        # test: submitted jobs never reach a shared RabbitMQ that no worker here consumes.
        env = {"MLAPI_TRUSTED_PROXY_HOPS": "1", "CELERY_BROKER_URL": ""}
        if self.name == "database":
            url = database_url()
            if not url.startswith("postgres"):
                pytest.skip("the database outage needs PostgreSQL (SQLite is a local file)")
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            self.relay = Relay(("127.0.0.1", port)).open()
            env["DATABASE_URL"] = url.replace(f":{port}/", f":{self.relay.port}/")
        elif self.name == "cache":
            env["REDIS_URL"] = self.redis.start().url
        elif self.name == "broker":
            env["CELERY_BROKER_URL"] = self.redis.start().url
        else:  # objects: job inputs and results, and the model artifacts, in a bucket
            self.s3 = MotoServer()
            bucket = f"matrix-{uuid.uuid4().hex[:10]}"
            self.s3.client().create_bucket(Bucket=bucket)
            copy_artifacts_to_bucket(self.s3, bucket, "p")
            self.proxy = FaultyProxy(self.s3.port)
            env |= storage_env(self.proxy.endpoint, f"s3://{bucket}/p")
        return env

    def take_away(self) -> None:
        if self.relay:
            self.relay.cut()
        elif self.proxy:
            self.proxy.down()
        else:
            self.redis.stop()

    def bring_back(self) -> None:
        if self.relay:
            self.relay.open()
        elif self.proxy:
            self.proxy.up()
        else:
            self.redis.start()

    def close(self) -> None:
        if self.relay:
            self.relay.cut()
        if self.redis:
            self.redis.stop()
        if self.proxy:
            self.proxy.close()
            self.s3.stop()


@pytest.mark.parametrize("store_name", ["database", "cache", "broker", "objects"])
def test_every_endpoint_class_answers_503_or_its_usual_reply_while_a_store_is_away_and_recovers(
    store_name, live_demo_models, capsys
):
    if store_name == "database":
        pytest.importorskip("psycopg")
    seeded_plan("free")  # signups land on it (a transactional test may have flushed it)
    subscription = SubscriptionFactory(plan=PlanFactory(rate=100_000.0, burst=100_000))
    subscription.user.is_staff = subscription.user.is_superuser = True
    subscription.user.save()
    key_text = ApiKeyFactory(subscription=subscription).plaintext
    store = Store(store_name)
    env = store.server_env()
    server, rpc = GunicornServer(env=env), GrpcServer(env=env)
    rows = []
    try:
        server.start()
        rpc.start()
        client = prepare(server.url, subscription.user.username, key_text)
        for probe in PROBES:
            response = send(client, probe)
            assert response.status_code in probe.ok, f"{probe.name}: {response.text[:300]}"
        assert grpc_infer(rpc.address, key_text)[0] == grpc.StatusCode.OK
        used = QuotaCounter.objects.get(subscription=subscription).used
        jobs = BatchJob.objects.filter(subscription=subscription).count()

        store.take_away()
        for probe in PROBES:
            for _ in range(2):  # both gunicorn workers, not only the first to notice
                response = send(client, probe)
                check_during_outage(store_name, probe, response)
            rows.append([probe.name, f"{probe.method} {probe.path}", describe(response)])
        code, details = grpc_infer(rpc.address, key_text)
        check_grpc_during_outage(store_name, code, details)
        rows.append(["gRPC ModelInfer", "inference.GRPCInferenceService/ModelInfer", code.name])
        if store_name == "cache":  # refused data-plane calls spent no quota
            assert QuotaCounter.objects.get(subscription=subscription).used == used
        if store_name in ("broker", "objects"):  # a refused job left nothing behind
            assert BatchJob.objects.filter(subscription=subscription).count() == jobs

        store.bring_back()
        for probe, row in zip(PROBES, rows, strict=False):
            assert wait_for(lambda p=probe: send(client, p).status_code in p.ok, 30), probe.name
            row.append(describe(send(client, probe)))
        ok = grpc.StatusCode.OK
        assert wait_for(lambda: grpc_infer(rpc.address, key_text)[0] == ok, 30), rpc.log_text()
        rows[-1].append(ok.name)
    finally:
        server.stop()
        rpc.stop()
        store.close()
    with capsys.disabled():
        print(f"\n{store_name} away | endpoint | during outage | after recovery")
        for row in rows:
            print(" | ".join(row))
    assert "Internal Server Error" not in server.log_text(), server.log_text()
    assert "Traceback" not in rpc.log_text(), rpc.log_text()
