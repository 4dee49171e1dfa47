"""v1 data-plane views: list and describe models, predict (default or pinned version)."""

from __future__ import annotations

import orjson
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.exceptions import NotFound, ParseError, PermissionDenied

from mlapi.pagination import PageNumberPagination
from predictions import dataplane
from predictions.metering import PredictionAPIView
from predictions.models import MLModel
from predictions.parsers import StrictJSONParser
from predictions.serializers import (
    DATA_PLANE_ERRORS,
    ModelDetailSerializer,
    ModelPageSerializer,
    PredictRequestSerializer,
    PredictResponseSerializer,
    model_data,
    problems,
)
from predictions.validation import validate_body

PREDICT_EXAMPLES = [
    OpenApiExample(
        "iris, objects",
        request_only=True,
        value={
            "instances": [
                {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
            ],
            "parameters": {"probabilities": True},
        },
    ),
    OpenApiExample(
        "house-price, arrays in schema order",
        request_only=True,
        value={"instances": [["D", "N", "F"], ["F", "Y", "L"]]},
    ),
    OpenApiExample(
        "iris reply",
        response_only=True,
        value={
            "model": "iris",
            "version": "1",
            "predictions": ["setosa"],
            "probabilities": [[1.0, 0.0, 0.0]],
        },
    ),
]


def json_response(body: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def visible_models(principal):
    models = MLModel.objects.prefetch_related("versions").order_by("name")
    if not principal.plan.all_models:
        models = models.filter(name__in=principal.plan.model_names)
    if principal.restrictions.models is not None:  # §10: a key limited to some models
        models = models.filter(name__in=principal.restrictions.models)
    return models


class ModelListView(PredictionAPIView):
    """The models the caller's plan covers, with their default version's schema."""

    scope = dataplane.MODELS_READ

    @extend_schema(
        responses={(200, "application/json"): ModelPageSerializer} | problems(*DATA_PLANE_ERRORS),
        summary="List models",
        operation_id="api_v1_models_list",
    )
    def get(self, request):
        dataplane.authorize(self.meter, scope=self.scope)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(visible_models(request.auth), request, view=self)
        return paginator.get_paginated_response([model_data(m) for m in page])


class ModelDetailView(PredictionAPIView):
    """One model: its versions, default version, task, input schema and output."""

    scope = dataplane.MODELS_READ

    @extend_schema(
        responses={(200, "application/json"): ModelDetailSerializer} | problems(*DATA_PLANE_ERRORS),
        summary="Describe a model",
    )
    def get(self, request, name: str):
        dataplane.check_key_restrictions(self.meter, scope=self.scope, model=name)
        model = visible_models(request.auth).filter(name=name).first()
        if model is None:
            if MLModel.objects.filter(name=name).exists():
                raise PermissionDenied(f"Your plan does not include the model {name!r}.")
            raise NotFound(f"No model named {name!r}.")
        return json_response(model_data(model, detail=True))


class PredictView(PredictionAPIView):
    """Predict with a model's default version, or with the version in the path."""

    consumes_quota = True
    parser_classes = [StrictJSONParser]

    @extend_schema(
        request=PredictRequestSerializer,
        responses={(200, "application/json"): PredictResponseSerializer}
        | problems(*DATA_PLANE_ERRORS, 415),
        examples=PREDICT_EXAMPLES,
        summary="Predict",
    )
    def post(self, request, name: str, version: str | None = None):
        predictor = self.predictor_for(request, name, version)
        if not request.body:
            raise ParseError("The body is empty; send a JSON object.", code="invalid_json")
        columns, parameters = validate_body(
            request.data, predictor.schema, max_instances=self.meter.principal.plan.max_instances
        )
        wants_proba = bool(parameters.get("probabilities"))
        result = self.predict(request, predictor, columns, probabilities=wants_proba)
        body = {
            "model": predictor.model_name,
            "version": predictor.version,
            "predictions": result.predictions,
        }
        if wants_proba and result.probabilities is not None:
            body["probabilities"] = result.probabilities
        return json_response(body)
