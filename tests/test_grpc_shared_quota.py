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
from tests.servers import GrpcServer, GunicornServer
from tests.support.grpc_calls import IRIS_ROW, iris_request
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


def _rest_once(url: str, key: str) -> None:
    response = requests.post(
        f"{url}/api/v1/models/iris/predict",
        json={"instances": [IRIS_ROW]},
        headers={"X-API-Key": key},
        timeout=60,
    )
    assert response.status_code == 200, response.text


def _grpc_once(address: str, key: str) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        stub.ModelInfer(iris_request(), metadata=(("x-api-key", key),), timeout=60)


def _guarded(target, *args) -> None:
    try:
        target(*args)
    except BaseException as exc:  # a thread's failure must fail the test
        args[-1].append(("error", exc))


def test_rest_and_grpc_share_one_quota_exactly_under_concurrency(live_demo_models):
    _, key = make_subscriber_key(plan_name="shared-quota", quota=QUOTA, rate=10_000, burst=10_000)
    _, warm_key = make_subscriber_key(plan_name="shared-quota-warm-up")
    with GunicornServer(workers=2) as web, GrpcServer() as rpc:
        for _ in range(2):  # load the model in both gunicorn workers and the gRPC server
            _rest_once(web.url, warm_key)
        _grpc_once(rpc.address, warm_key)
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
    assert {protocol for protocol, _ in outcomes} == {"v1", "grpc"}
    assert QuotaCounter.objects.get(subscription__plan__name="shared-quota").used == QUOTA
    records = UsageRecord.objects.filter(subscription__plan__name="shared-quota")
    assert records.filter(status=200).count() == QUOTA
    ok = records.filter(status=200).values_list("protocol", flat=True)
    assert sorted(ok) == sorted(admitted)
    assert records.filter(status=429).count() == THREADS
