"""Bad input over gRPC gets a clear status whose message starts with the contract code.

Never INTERNAL, never a hang; refusals before admission use no quota; 429s carry the rate
limit state and `retry-after` in trailing metadata (CONTRACT 4, 5, 8).
"""

from __future__ import annotations

import grpc
import pytest
from tritonclient.grpc import service_pb2

from keys.models import QuotaCounter
from tests.conftest import make_subscriber_key
from tests.support.grpc_calls import (  # noqa: F401 - fixtures
    IRIS_ROW,
    bytes_tensor,
    call,
    grpc_server,
    iris_request,
    stub,
)
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
S = grpc.StatusCode


def _house(**overrides: bytes) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="house-price")
    for name, value in (("property_type", "D"), ("old_new", "N"), ("duration", "F")):
        request.inputs.add(name=name, datatype="BYTES", shape=[1])
        request.raw_input_contents.append(overrides.get(name, bytes_tensor([value])))
    return request


def _mixed() -> service_pb2.ModelInferRequest:
    request = iris_request()
    request.inputs[0].contents.fp64_contents.extend(IRIS_ROW)
    return request


def _typed_nan() -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="input", datatype="FP64", shape=[1, 4])
    tensor.contents.fp64_contents.extend([5.1, float("nan"), 1.4, 0.2])
    return request


def _short_raw() -> service_pb2.ModelInferRequest:
    request = iris_request()
    request.inputs[0].shape[:] = [2, 4]  # one row of bytes for two rows declared
    return request


def _int32() -> service_pb2.ModelInferRequest:
    request = iris_request()
    request.inputs[0].datatype = "INT32"
    return request


BAD_INPUT = {
    "unknown model": (lambda: iris_request(model_name="nope"), S.NOT_FOUND, "not_found"),
    "unknown version": (lambda: iris_request(model_version="9"), S.NOT_FOUND, "not_found"),
    "wrong shape": (
        lambda: iris_request([[1.0, 2.0, 3.0]]),
        S.INVALID_ARGUMENT,
        "validation_error",
    ),
    "wrong datatype": (_int32, S.INVALID_ARGUMENT, "validation_error"),
    "raw shorter than shape": (_short_raw, S.INVALID_ARGUMENT, "validation_error"),
    "mixed raw and typed": (_mixed, S.INVALID_ARGUMENT, "validation_error"),
    "bytes framing": (
        lambda: _house(old_new=b"\x09\x00\x00\x00N"),
        S.INVALID_ARGUMENT,
        "validation_error",
    ),
    "unknown category": (
        lambda: _house(duration=bytes_tensor(["X"])),
        S.INVALID_ARGUMENT,
        "validation_error",
    ),
    "raw NaN": (
        lambda: iris_request([[5.1, float("nan"), 1.4, 0.2]]),
        S.INVALID_ARGUMENT,
        "validation_error",
    ),
    "typed NaN": (_typed_nan, S.INVALID_ARGUMENT, "validation_error"),
    "raw out of range": (
        lambda: iris_request([[5.1, 3.5, 1.4, 99.0]]),
        S.INVALID_ARGUMENT,
        "validation_error",
    ),
    "too many instances": (
        lambda: iris_request([IRIS_ROW] * 6),
        S.INVALID_ARGUMENT,
        "validation_error",
    ),
    "no inputs": (
        lambda: service_pb2.ModelInferRequest(model_name="iris"),
        S.INVALID_ARGUMENT,
        "validation_error",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_refused_with_its_status_and_uses_no_quota(case, stub, live_demo_models):  # noqa: F811
    build, status, code = BAD_INPUT[case]
    _, key = make_subscriber_key(plan_name="grpc-bad", max_instances=5)
    _, got, details, _, trailers = call(stub, build(), key)
    assert (got, details.split(":")[0]) == (status, code), details
    assert "ratelimit" in trailers and "ratelimit-policy" in trailers
    assert not QuotaCounter.objects.filter(used__gt=0).exists()
    record = UsageRecord.objects.get()
    assert (record.protocol, record.error_code, record.predictions) == ("grpc", code, 0)


@pytest.mark.parametrize(
    ("key", "code"),
    [(None, "not_authenticated"), ("mlk_nope", "invalid_credentials"),
     ("mlk_abcdef123456.wrong-secret", "invalid_credentials")],
)  # fmt: skip
def test_missing_or_bad_credentials_are_unauthenticated(key, code, stub, live_demo_models):  # noqa: F811
    _, got, details, _, _ = call(stub, iris_request(), key)
    assert (got, details.split(":")[0]) == (S.UNAUTHENTICATED, code)
    assert not UsageRecord.objects.exists()  # nobody to charge


def test_a_revoked_key_is_unauthenticated_key_revoked(stub, live_demo_models):  # noqa: F811
    from keys.models import ApiKey
    from keys.services import revoke_api_key

    subscription, key = make_subscriber_key(plan_name="grpc-revoked")
    revoke_api_key(api_key=ApiKey.objects.get(subscription=subscription))
    _, got, details, _, _ = call(stub, iris_request(), key)
    assert (got, details.split(":")[0]) == (S.UNAUTHENTICATED, "key_revoked")


def test_a_model_outside_the_plan_is_permission_denied(stub, live_demo_models):  # noqa: F811
    _, key = make_subscriber_key(
        plan_name="grpc-house-only", all_models=False, model_names=["house-price"]
    )
    _, got, details, _, _ = call(stub, iris_request(), key)
    assert (got, details.split(":")[0]) == (S.PERMISSION_DENIED, "permission_denied")


def test_a_message_over_the_limit_is_resource_exhausted_payload_too_large(stub, settings):  # noqa: F811
    request = iris_request()
    request.raw_input_contents.append(b"\0" * (settings.MLAPI_MAX_REQUEST_BYTES + 10))
    _, got, details, _, _ = call(stub, request, "mlk_x.y")
    assert (got, details.split(":")[0]) == (S.RESOURCE_EXHAUSTED, "payload_too_large")


def test_garbage_bytes_are_invalid_argument_not_internal(grpc_server):  # noqa: F811
    with grpc.insecure_channel(grpc_server.address) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as error:
            infer(b"\xff\xff\xff", metadata=(("x-api-key", "mlk_x.y"),), timeout=10)
    assert error.value.code() == S.INVALID_ARGUMENT
    assert error.value.details().startswith("invalid_json:")


def test_an_expired_deadline_is_deadline_exceeded_and_the_server_goes_on(stub, live_demo_models):  # noqa: F811
    _, key = make_subscriber_key(plan_name="grpc-deadline")
    _, got, _, _, _ = call(stub, iris_request(), key, timeout=0.0001)
    assert got == S.DEADLINE_EXCEEDED
    assert call(stub, iris_request(), key)[1] == S.OK


def test_quota_exhaustion_is_resource_exhausted_with_trailers(stub, live_demo_models):  # noqa: F811
    _, key = make_subscriber_key(plan_name="grpc-quota", quota=3)
    assert call(stub, iris_request([IRIS_ROW] * 2), key)[1] == S.OK
    _, got, details, _, trailers = call(stub, iris_request([IRIS_ROW] * 2), key)
    assert (got, details.split(":")[0]) == (S.RESOURCE_EXHAUSTED, "quota_exceeded")
    assert int(trailers["retry-after"]) >= 1
    assert '"quota";r=1;' in trailers["ratelimit"]  # refused whole: 1 left
    assert QuotaCounter.objects.get().used == 2


def test_rate_exhaustion_is_resource_exhausted_rate_limited_with_retry_after(
    stub,  # noqa: F811
    live_demo_models,
):
    _, key = make_subscriber_key(plan_name="grpc-rate", rate=0.01, burst=1)
    assert call(stub, iris_request(), key)[1] == S.OK
    _, got, details, _, trailers = call(stub, iris_request(), key)
    assert (got, details.split(":")[0]) == (S.RESOURCE_EXHAUSTED, "rate_limited")
    assert int(trailers["retry-after"]) >= 1 and '"burst";r=0;' in trailers["ratelimit"]
    assert QuotaCounter.objects.get().used == 1
