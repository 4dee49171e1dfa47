"""The gRPC data plane with the real `tritonclient.grpc` against a live server (CONTRACT 8)."""

from __future__ import annotations

import subprocess
import sys

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from google.protobuf import descriptor_pb2

from keys.models import QuotaCounter
from tests.conftest import make_subscriber_key
from tests.support.grpc_calls import IRIS_ROW, call, grpc_server, iris_request, stub  # noqa: F401
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(grpc_server):  # noqa: F811
    client = triton.InferenceServerClient(grpc_server.address)
    yield client
    client.close()


def test_health_and_server_metadata_need_no_credentials(client, grpc_server):  # noqa: F811
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata().name == "mlapi"
    with grpc.insecure_channel(grpc_server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService")
        assert health.Check(request).status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_and_describes_the_inference_service(grpc_server):  # noqa: F811
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(grpc_server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        asks = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="inference.GRPCInferenceService"
            ),
        ]
        listed, described = list(stub.ServerReflectionInfo(iter(asks)))
    names = {s.name for s in listed.list_services_response.service}
    assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names
    proto = descriptor_pb2.FileDescriptorProto.FromString(
        described.file_descriptor_response.file_descriptor_proto[0]
    )
    methods = {m.name for m in proto.service[0].method}
    assert {"ServerLive", "ModelMetadata", "ModelInfer"} <= methods


def test_tritonclient_predicts_iris_with_probabilities_and_rate_limit_metadata(
    client, live_demo_models
):
    _, key = make_subscriber_key(plan_name="grpc-ok", quota=1000)
    rows = np.array([IRIS_ROW, [6.7, 3.0, 5.2, 2.3]], dtype=np.float64)
    tensor = triton.InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    result = client.infer("iris", [tensor], headers={"x-api-key": key})
    assert result.as_numpy("predict").tolist() == [b"setosa", b"virginica"]
    assert result.as_numpy("predict_proba").shape == (2, 3)
    assert result.get_response().model_version == "1"
    assert QuotaCounter.objects.get().used == 2
    record = UsageRecord.objects.get()
    assert (record.protocol, record.status, record.predictions) == ("grpc", 200, 2)
    assert (record.model_name, record.path) == (
        "iris",
        "/inference.GRPCInferenceService/ModelInfer",
    )


def test_initial_metadata_carries_the_rate_limit_policy_and_state(stub, live_demo_models):  # noqa: F811
    _, key = make_subscriber_key(plan_name="grpc-md", quota=500, burst=100)
    response, code, _, initial, _ = call(stub, iris_request(id="req-7"), key)
    assert code == grpc.StatusCode.OK and response.id == "req-7"
    assert initial["ratelimit-policy"].startswith('"burst";q=100;w=1, "quota";q=500;')
    assert '"quota";r=499;' in initial["ratelimit"]


def test_fp32_typed_contents_and_bearer_tokens_work_too(stub, live_demo_models):  # noqa: F811
    from rest_framework_simplejwt.tokens import AccessToken
    from tritonclient.grpc import service_pb2

    subscription, _ = make_subscriber_key(plan_name="grpc-typed")
    request = service_pb2.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    tensor.contents.fp32_contents.extend(IRIS_ROW)
    token = str(AccessToken.for_user(subscription.user))
    response, _ = stub.ModelInfer.with_call(
        request, metadata=(("authorization", f"Bearer {token}"),), timeout=30
    )
    assert response.raw_output_contents[0][4:] == b"setosa"
    assert UsageRecord.objects.get().key_id is None


def test_house_price_takes_one_bytes_tensor_per_feature(client, live_demo_models):
    _, key = make_subscriber_key(plan_name="grpc-house")
    inputs = []
    for name, value in {"property_type": "D", "old_new": "N", "duration": "F"}.items():
        tensor = triton.InferInput(name, [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[value]], dtype=object))
        inputs.append(tensor)
    result = client.infer("house-price", inputs, headers={"x-api-key": key})
    assert result.as_numpy("predict").dtype == np.float64 and result.as_numpy("predict")[0] > 0


def test_model_metadata_and_readiness_are_metered_like_rest(client, live_demo_models):
    _, key = make_subscriber_key(plan_name="grpc-meta")
    metadata = client.get_model_metadata("iris", headers={"x-api-key": key})
    assert [(i.name, i.datatype, list(i.shape)) for i in metadata.inputs] == [
        ("input", "FP64", [-1, 4])
    ]
    assert client.is_model_ready("iris", headers={"x-api-key": key})
    assert sorted(UsageRecord.objects.values_list("protocol", flat=True)) == ["grpc", "grpc"]


def test_the_committed_descriptor_set_is_generated_from_the_proto(tmp_path):
    from predictions.grpc import messages

    out = tmp_path / "inference.binpb"
    proto_dir = messages.DESCRIPTOR_SET.parent
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}",
         f"--descriptor_set_out={out}", "inference.proto"],
        check=True,
    )  # fmt: skip
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    committed = descriptor_pb2.FileDescriptorSet.FromString(messages.DESCRIPTOR_SET.read_bytes())
    assert fresh == committed, "run `make proto` and commit predictions/grpc/inference.binpb"


@pytest.mark.parametrize("model", ["iris", "house-price"])
def test_the_portal_docs_grpc_example_runs_as_pasted(model, grpc_server, live_demo_models):  # noqa: F811
    import contextlib
    import io
    import os

    from portal.examples import build_examples

    _, key = make_subscriber_key(plan_name="grpc-docs")
    version = live_demo_models[model]
    snippet = build_examples(
        base_url="http://127.0.0.1:8000",
        model_name=model,
        schema=version.input_schema,
        classifier=model == "iris",
        metadata=version.metadata,
        grpc_address=grpc_server.address,
    ).triton_grpc
    printed = io.StringIO()
    os.environ["MLAPI_KEY"] = key
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(snippet, f"<{model} docs example>", "exec"), {})  # noqa: S102
    finally:
        del os.environ["MLAPI_KEY"]
    assert ("setosa" if model == "iris" else ".") in printed.getvalue()
