"""One quota, two front doors: REST (gunicorn) and gRPC spend it together, exactly.

16 client threads, half on each protocol, predict one iris row at a time until refused for
quota. Admitted predictions must equal the quota, the counter must say so, and every answer
is one usage record naming its protocol.
"""

from __future__ import annotations

import threading

import grpc
import pytest
import requests
from tritonclient.grpc import service_pb2_grpc

from keys.models import QuotaCounter
from tests.conftest import make_subscriber_key
from tests.grpc_support import IRIS_ROW, iris_request
from tests.servers import GrpcServer, GunicornServer
from usage.models import UsageRecord

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
QUOTA = 40
THREADS = 16


def _rest(url: str, key: str, outcomes: list) -> None:
    with requests.Session() as session:
        while True:
            response = session.post(
                f"{url}/api/v1/models/iris/predict",
                json={"instances": [IRIS_ROW]},
                headers={"X-API-Key": key},
                timeout=60,
            )
            outcomes.append(("v1", response.status_code))
            if response.status_code != 200:
                assert response.json()["code"] == "quota_exceeded", response.text
                return


def _grpc(address: str, key: str, outcomes: list) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        while True:
            try:
                stub.ModelInfer(iris_request(), metadata=(("x-api-key", key),), timeout=60)
            except grpc.RpcError as error:
                assert error.details().startswith("quota_exceeded:"), error.details()
                outcomes.append(("grpc", 429))
                return
            outcomes.append(("grpc", 200))


def _guarded(target, *args) -> None:
    try:
        target(*args)
    except BaseException as exc:  # a thread's failure must fail the test
        args[-1].append(("error", exc))


def test_rest_and_grpc_share_one_quota_exactly_under_concurrency(live_demo_models):
    _, key = make_subscriber_key(plan_name="shared-quota", quota=QUOTA, rate=10_000, burst=10_000)
    with GunicornServer(workers=2) as web, GrpcServer() as rpc:
        outcomes: list = []
        threads = [
            threading.Thread(
                target=_guarded,
                args=(_rest, web.url, key, outcomes)
                if i % 2
                else (_grpc, rpc.address, key, outcomes),
            )
            for i in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert not [o for o in outcomes if o[0] == "error"], outcomes
    admitted = [protocol for protocol, status in outcomes if status == 200]
    assert len(admitted) == QUOTA
    assert set(admitted) == {"v1", "grpc"}
    assert QuotaCounter.objects.get().used == QUOTA
    records = UsageRecord.objects.filter(status=200)
    assert records.count() == QUOTA
    assert sorted(records.values_list("protocol", flat=True)) == sorted(admitted)
    assert UsageRecord.objects.filter(status=429).count() == THREADS
