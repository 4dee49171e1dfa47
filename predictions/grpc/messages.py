"""The `inference.*` message classes, built from inference.binpb in a private descriptor pool.

Why not a generated `*_pb2.py`: generated modules register their messages in protobuf's
default pool, and `tritonclient.grpc` registers its own `inference.ModelInferRequest` & co.
there; two different files defining the same symbols cannot both be loaded, so a process (a
test, a script) could not hold our server and the real client at once. Here the messages live
in `POOL`, which nothing else touches; on the wire only field numbers count, and they are the
KServe/Triton ones. `POOL` also holds the health and reflection files, so server reflection
can describe every service the server answers.

inference.binpb is generated from inference.proto by `make proto` (grpcio-tools, a dev
dependency); `tests/test_grpc_server.py` checks the two agree.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

DESCRIPTOR_SET = Path(__file__).with_name("inference.binpb")
SERVICE_NAME = "inference.GRPCInferenceService"

POOL = descriptor_pool.DescriptorPool()
for _file in descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes()).file:
    POOL.Add(_file)
for _module in (health_pb2, reflection_pb2):
    POOL.Add(descriptor_pb2.FileDescriptorProto.FromString(_module.DESCRIPTOR.serialized_pb))


def _message(name: str) -> type:
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"inference.{name}"))


ServerLiveRequest = _message("ServerLiveRequest")
ServerLiveResponse = _message("ServerLiveResponse")
ServerReadyRequest = _message("ServerReadyRequest")
ServerReadyResponse = _message("ServerReadyResponse")
ModelReadyRequest = _message("ModelReadyRequest")
ModelReadyResponse = _message("ModelReadyResponse")
ServerMetadataRequest = _message("ServerMetadataRequest")
ServerMetadataResponse = _message("ServerMetadataResponse")
ModelMetadataRequest = _message("ModelMetadataRequest")
ModelMetadataResponse = _message("ModelMetadataResponse")
ModelInferRequest = _message("ModelInferRequest")
ModelInferResponse = _message("ModelInferResponse")
InferTensorContents = _message("InferTensorContents")

# RPC name -> (request class, response class), in the service's order.
METHODS: dict[str, tuple[type, type]] = {
    "ServerLive": (ServerLiveRequest, ServerLiveResponse),
    "ServerReady": (ServerReadyRequest, ServerReadyResponse),
    "ModelReady": (ModelReadyRequest, ModelReadyResponse),
    "ServerMetadata": (ServerMetadataRequest, ServerMetadataResponse),
    "ModelMetadata": (ModelMetadataRequest, ModelMetadataResponse),
    "ModelInfer": (ModelInferRequest, ModelInferResponse),
}
