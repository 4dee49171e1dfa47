"""Open Inference Protocol V2 REST surface and the KServe V1 `:predict` alias.

Health and server metadata are public; model endpoints are metered data-plane views (API
key or JWT, plan coverage, rate + quota) like /api/v1. Bodies are read whatever their
Content-Type (tritonclient sends none); errors come out as `{"error": ..., "code": ...}`.
"""

from __future__ import annotations

import logging

import orjson
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.exceptions import ValidationError

from mlapi.exceptions import unavailable_store
from predictions import dataplane
from predictions.inference import models_ready
from predictions.metering import PredictionAPIView
from predictions.protocol import (
    SERVER_VERSION,
    decode_inputs,
    encode_response,
    model_metadata,
    output_names,
    output_tensors,
    requested_outputs,
    split_body,
    tensors_to_instances,
)
from predictions.serializers import DATA_PLANE_ERRORS, protocol_errors
from predictions.validation import parse_json

logger = logging.getLogger(__name__)

V2_TAGS = ["Open Inference Protocol"]
OK = {(200, "application/json"): OpenApiTypes.OBJECT}
GETS = (401, 403, 404, 429, 503)  # a model GET has no body to refuse
V2_REQUEST_EXAMPLE = OpenApiExample(
    "iris, JSON tensor",
    request_only=True,
    value={
        "id": "42",
        "inputs": [
            {"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
        ],
    },
)
V2_RESPONSE_EXAMPLE = OpenApiExample(
    "iris reply",
    response_only=True,
    value={
        "model_name": "iris",
        "model_version": "1",
        "id": "42",
        "outputs": [
            {"name": "predict", "datatype": "BYTES", "shape": [1], "data": ["setosa"]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [1, 3], "data": [1, 0, 0]},
        ],
    },
)
SERVER = {"name": "mlapi", "version": SERVER_VERSION, "extensions": ["binary_tensor_data"]}


def _json(body: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


@never_cache
@require_GET
def health_live(request: HttpRequest) -> HttpResponse:
    return _json({"live": True})


@never_cache
@require_GET
def health_ready(request: HttpRequest) -> HttpResponse:
    """`{"ready": bool}`, 503 when false (CONTRACT 6): models that do not load, or no database."""
    try:
        ready, _ = models_ready()
    except Exception as exc:
        store = unavailable_store(exc)
        if store is None:
            raise
        # A health reply keeps its shape when the server is not ready (tritonclient reads the
        # status); the registry is in the database, so without it no model can be vouched for.
        logger.warning("V2 readiness: the %s is unavailable (%s)", store, type(exc).__name__)
        ready = False
    return _json({"ready": ready}, status=200 if ready else 503)


@require_GET
def server_metadata(request: HttpRequest) -> HttpResponse:
    return _json(SERVER)


class V2ModelMetadataView(PredictionAPIView):
    """`GET /v2/models/{name}[/versions/{v}]`."""

    scope = dataplane.MODELS_READ

    @extend_schema(summary="V2 model metadata", tags=V2_TAGS, responses=OK | protocol_errors(*GETS))
    def get(self, request, name: str, version: str | None = None):
        return _json(model_metadata(self.predictor_for(request, name, version)))


class V2ModelReadyView(PredictionAPIView):
    """`GET /v2/models/{name}[/versions/{v}]/ready`: 200 when it loads, else 503."""

    scope = dataplane.MODELS_READ

    @extend_schema(
        summary="V2 model readiness", tags=V2_TAGS, responses=OK | protocol_errors(*GETS)
    )
    def get(self, request, name: str, version: str | None = None):
        predictor = self.predictor_for(request, name, version)  # 503 model_unavailable
        return _json({"name": predictor.model_name, "ready": True})


class V2InferView(PredictionAPIView):
    """`POST /v2/models/{name}[/versions/{v}]/infer`: JSON or binary tensors."""

    consumes_quota = True

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses=OK | protocol_errors(*DATA_PLANE_ERRORS),
        examples=[V2_REQUEST_EXAMPLE, V2_RESPONSE_EXAMPLE],
        summary="V2 inference (JSON or binary tensors)",
        tags=V2_TAGS,
    )
    def post(self, request, name: str, version: str | None = None):
        predictor = self.predictor_for(request, name, version)
        header, binary = split_body(
            request.body, request.headers.get("Inference-Header-Content-Length")
        )
        instances = tensors_to_instances(decode_inputs(header, binary), predictor.schema)
        columns = self.validate(predictor, instances)
        names, binary_out = requested_outputs(header, output_names(predictor))
        result = self.predict(request, predictor, columns, probabilities="predict_proba" in names)
        tensors = output_tensors(predictor, names, result, len(instances))
        body = {"model_name": predictor.model_name, "model_version": predictor.version}
        if isinstance(header.get("id"), str):
            body["id"] = header["id"]
        payload, header_length = encode_response(body, tensors, binary_out)
        if header_length is None:
            return HttpResponse(payload, content_type="application/json")
        response = HttpResponse(payload, content_type="application/octet-stream")
        response["Inference-Header-Content-Length"] = str(header_length)
        return response


class KServeV1PredictView(PredictionAPIView):
    """`POST /v1/models/{name}:predict` `{"instances": [...]}` -> `{"predictions": [...]}`."""

    consumes_quota = True

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses=OK | protocol_errors(*DATA_PLANE_ERRORS),
        examples=[
            OpenApiExample("iris", value={"instances": [[5.1, 3.5, 1.4, 0.2]]}, request_only=True),
            OpenApiExample("reply", value={"predictions": ["setosa"]}, response_only=True),
        ],
        summary="KServe V1 predict",
        tags=V2_TAGS,
    )
    def post(self, request, name: str):
        predictor = self.predictor_for(request, name)
        body = parse_json(request.body)
        if not isinstance(body, dict):
            raise ValidationError(["the body must be a JSON object with an `instances` list"])
        columns = self.validate(predictor, body.get("instances"))
        result = self.predict(request, predictor, columns, probabilities=False)
        return _json({"predictions": result.predictions})
