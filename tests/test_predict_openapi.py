"""The OpenAPI document describes the prediction endpoints and the X-API-Key scheme."""

from __future__ import annotations

import pytest
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_schema_is_valid_openapi_3_1(schema):
    assert schema["openapi"].startswith("3.1")
    validate_schema(schema)


def test_data_plane_endpoints_declare_the_x_api_key_scheme(schema):
    scheme = schema["components"]["securitySchemes"]["ApiKeyAuth"]
    assert scheme == scheme | {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    predict = schema["paths"]["/api/v1/models/{name}/predict"]["post"]
    assert {"ApiKeyAuth": []} in predict["security"]


def test_predict_and_v2_infer_carry_examples(schema):
    predict = schema["paths"]["/api/v1/models/{name}/predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["examples"]
    infer = schema["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["examples"]
