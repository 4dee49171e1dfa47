"""`inference.GRPCInferenceService`: a thin adapter from gRPC calls to predictions.dataplane.

Every handler takes the request's raw bytes (so an over-limit or unparsable message is refused
with the contract's status, not gRPC's generic one) and returns serialized bytes. Metered RPCs
(ModelReady, ModelMetadata, ModelInfer) authenticate from metadata (`x-api-key` or
`authorization: Bearer`), take the same limits as REST, answer the RateLimit headers as initial
metadata (trailing metadata on refusals, with `retry-after` on 429s) and are recorded as
usage with protocol `grpc`. Health and server metadata are public, like their REST twins.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
from django.conf import settings
from django.db import close_old_connections
from google.protobuf.message import DecodeError
from rest_framework.exceptions import ParseError

from mlapi import protocols
from mlapi.exceptions import PayloadTooLarge
from predictions import dataplane
from predictions.errors import ModelUnavailable, PredictionTimeout
from predictions.grpc import messages as pb
from predictions.grpc.status import CallRefused, as_metadata, grpc_code, summarize
from predictions.grpc.tensors import (
    decode_inputs,
    numeric_matrix,
    requested_outputs,
)
from predictions.inference import models_ready
from predictions.protocol import (
    SERVER_NAME,
    SERVER_VERSION,
    binary_contents,
    model_metadata,
    output_names,
    output_tensors,
    tensors_to_instances,
)
from usage.calls import finish_call


def _parse(message_class: type, raw: bytes):
    if len(raw) > settings.MLAPI_MAX_REQUEST_BYTES:
        raise PayloadTooLarge(
            f"Request message of {len(raw)} bytes exceeds the limit of "
            f"{settings.MLAPI_MAX_REQUEST_BYTES} bytes."
        )
    try:
        return message_class.FromString(raw)
    except DecodeError:
        raise ParseError("The request is not a valid protobuf message.") from None


def _deadline(context) -> float:
    """Seconds the prediction may take: the client's deadline or the server's, the sooner."""
    limit = settings.MLAPI_PREDICT_TIMEOUT_S
    remaining = context.time_remaining()
    if remaining is None:
        return limit
    if remaining <= 0:
        raise PredictionTimeout("The call's deadline expired before the prediction started.")
    return min(limit, remaining)


def _refuse(context, exc: BaseException, meter=None) -> None:
    """End the RPC with the mapped status; the message starts with the contract code."""
    summary = summarize(exc)
    headers = dict(summary.headers)
    if meter is not None:
        meter.status, meter.error_code = summary.status, summary.code
        limit_headers, _ = meter.settle()
        headers |= limit_headers | meter.headers
    context.set_trailing_metadata(as_metadata(headers))
    context.abort(grpc_code(summary.status), f"{summary.code}: {summary.detail}")


def peer_address(peer: str) -> str:
    """The address in a gRPC peer string: `ipv4:1.2.3.4:5`, `ipv6:[::1]:5` -> `1.2.3.4`, `::1`."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition("]")[0].lstrip("[")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return ""


class InferenceService:
    """The handlers; `generic_handler()` registers them under the KServe service name."""

    def generic_handler(self) -> grpc.GenericRpcHandler:
        handlers = {
            "ServerLive": self.server_live,
            "ServerReady": self.server_ready,
            "ServerMetadata": self.server_metadata,
            "ModelReady": self.metered("ModelReady", self.model_ready),
            "ModelMetadata": self.metered("ModelMetadata", self.model_metadata),
            "ModelInfer": self.metered("ModelInfer", self.model_infer, consumes_quota=True),
        }
        return grpc.method_handlers_generic_handler(
            pb.SERVICE_NAME,
            {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in handlers.items()},
        )

    # --- public ---

    def server_live(self, raw: bytes, context) -> bytes:
        return pb.ServerLiveResponse(live=True).SerializeToString()

    def server_ready(self, raw: bytes, context) -> bytes:
        close_old_connections()
        try:
            ready, _ = models_ready()
        except Exception:  # noqa: BLE001 - a store down: not ready, never an INTERNAL
            ready = False
        finally:
            close_old_connections()
        return pb.ServerReadyResponse(ready=ready).SerializeToString()

    def server_metadata(self, raw: bytes, context) -> bytes:
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=SERVER_VERSION, extensions=[]
        ).SerializeToString()

    # --- metered ---

    def metered(self, rpc: str, body: Callable, *, consumes_quota: bool = False) -> Callable:
        """Wrap `body(meter, request, context) -> message` in the data plane's call steps."""
        request_class = pb.METHODS[rpc][0]
        path = f"/{pb.SERVICE_NAME}/{rpc}"

        def handler(raw: bytes, context) -> bytes:
            started = time.perf_counter()
            close_old_connections()
            meter = dataplane.start_call(
                protocol=protocols.GRPC,
                method="POST",
                path=path,
                request_bytes=len(raw),
                consumes_quota=consumes_quota,
            )
            payload = b""
            try:
                try:
                    request = _parse(request_class, raw)
                    metadata = dict(context.invocation_metadata())
                    meter.peer = peer_address(context.peer())
                    meter.forwarded_for = metadata.get("x-forwarded-for", "")
                    meter.origin = metadata.get("origin", "")
                    meter.request_id = metadata.get("x-request-id", "")[:128]
                    dataplane.authenticate(
                        meter,
                        api_key=metadata.get("x-api-key"),
                        authorization=metadata.get("authorization"),
                    )
                    if not consumes_quota:
                        meter.take_token()
                    payload = body(meter, request, context).SerializeToString()
                    meter.status = 200
                    headers, refused = meter.settle()
                    if refused is not None:
                        raise CallRefused(summarize(refused))
                except Exception as exc:  # noqa: BLE001 - every error gets its mapped status
                    payload = b""
                    _refuse(context, exc, meter if meter.principal is not None else None)
                context.send_initial_metadata(as_metadata(headers | meter.headers))
                return payload
            finally:
                meter.latency_ms = (time.perf_counter() - started) * 1000
                meter.response_bytes = len(payload)
                finish_call(meter)
                close_old_connections()

        return handler

    def model_ready(self, meter, request, context):
        try:
            dataplane.model_for(
                meter, request.name, request.version or None, scope=dataplane.MODELS_READ
            )
        except ModelUnavailable:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    def model_metadata(self, meter, request, context):
        predictor = dataplane.model_for(
            meter, request.name, request.version or None, scope=dataplane.MODELS_READ
        )
        return pb.ModelMetadataResponse(**model_metadata(predictor))

    def model_infer(self, meter, request, context):
        predictor = dataplane.model_for(meter, request.model_name, request.model_version or None)
        matrix = numeric_matrix(request, len(predictor.schema))
        columns = None if matrix is None else dataplane.validate_matrix(meter, predictor, matrix)
        if columns is None:  # the general path, which also words every error
            instances = tensors_to_instances(decode_inputs(request), predictor.schema)
            columns = dataplane.validate(meter, predictor, instances)
        rows = len(columns[0])
        names = requested_outputs(request, output_names(predictor))
        result = dataplane.infer(
            meter,
            predictor,
            columns,
            probabilities="predict_proba" in names,
            timeout=_deadline(context),
        )
        response = pb.ModelInferResponse(
            model_name=predictor.model_name, model_version=predictor.version, id=request.id
        )
        for name, datatype, shape, values in output_tensors(predictor, names, result, rows):
            response.outputs.add(name=name, datatype=datatype, shape=shape)
            response.raw_output_contents.append(binary_contents(datatype, values))
        return response
