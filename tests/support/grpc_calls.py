"""Helpers for the gRPC tests (no tests here): a live server per module and raw-stub calls.

Raw calls use the real client's own protobuf classes and stub (`tritonclient.grpc.service_pb2`,
`service_pb2_grpc`), so they also prove our field numbering is KServe/Triton's.
"""

from __future__ import annotations

import struct

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.servers import GrpcServer

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def grpc_server(django_db_setup):
    """One live gRPC server for the module, on the test database."""
    with GrpcServer() as server:
        yield server


@pytest.fixture
def stub(grpc_server):
    channel = grpc.insecure_channel(grpc_server.address)
    yield service_pb2_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def iris_request(rows: list[list[float]] | None = None, *, datatype: str = "FP64", **fields):
    """A raw-contents iris `ModelInferRequest` (FP64 or FP32, shape [N, 4])."""
    values = np.asarray(rows or [IRIS_ROW], dtype="<f8" if datatype == "FP64" else "<f4")
    request = service_pb2.ModelInferRequest(**({"model_name": "iris"} | fields))
    request.inputs.add(name="input", datatype=datatype, shape=list(values.shape))
    request.raw_input_contents.append(values.tobytes())
    return request


def bytes_tensor(values: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def call(stub, request, key: str | None, *, rpc: str = "ModelInfer", timeout: float = 30):
    """(response or None, status code, details, initial metadata, trailing metadata)."""
    metadata = (("x-api-key", key),) if key else ()
    try:
        response, rpc_call = getattr(stub, rpc).with_call(
            request, metadata=metadata, timeout=timeout
        )
    except grpc.RpcError as error:
        return (
            None,
            error.code(),
            error.details(),
            dict(error.initial_metadata() or ()),
            dict(error.trailing_metadata() or ()),
        )
    return (
        response,
        grpc.StatusCode.OK,
        "",
        dict(rpc_call.initial_metadata()),
        dict(rpc_call.trailing_metadata()),
    )
