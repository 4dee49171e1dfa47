"""X-Request-ID: accepted when well-formed, else generated; echoed; in problems, logs, usage."""

from __future__ import annotations

import json
import logging

import pytest

from mlapi.logformat import JsonFormatter
from mlapi.request_id import RequestIdLogFilter, current_request_id
from tests.support.problems import assert_problem
from usage.models import UsageRecord

IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def predict(client, key: str, **headers):
    return client.post(
        "/api/v1/models/iris/predict",
        IRIS,
        content_type="application/json",
        headers={"X-API-Key": key, **headers},
    )


def test_a_well_formed_client_request_id_is_echoed_and_lands_on_the_usage_record(
    client, demo_models, api_key
):
    response = predict(client, api_key, **{"X-Request-ID": "trace-0af7651916cd43dd"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "trace-0af7651916cd43dd"
    assert UsageRecord.objects.get().request_id == "trace-0af7651916cd43dd"


@pytest.mark.parametrize("bad", ["", "has space", "x" * 129, "semi;colon", "é"])
def test_a_malformed_request_id_is_replaced_by_a_generated_one(client, db, bad):
    response = client.get("/api/v1/plans", headers={"X-Request-ID": bad})
    echoed = response.headers["X-Request-ID"]
    assert echoed != bad and len(echoed) == 32 and int(echoed, 16) >= 0


@pytest.mark.parametrize("path", ["/api/v1/models/iris/predict", "/v2/models/iris/infer"])
def test_problem_bodies_carry_the_request_id_of_their_reply(client, db, path):
    response = client.post(path, {}, content_type="application/json")
    body = assert_problem(response, 401)
    assert body["request_id"] == response.headers["X-Request-ID"]


def test_every_reply_has_a_request_id_even_pages_and_health(client, db):
    ids = {client.get(path).headers["X-Request-ID"] for path in ("/healthz", "/portal/login/")}
    assert len(ids) == 2  # one per request


def test_json_log_lines_carry_the_current_request_id():
    record = logging.LogRecord("mlapi", logging.WARNING, __file__, 1, "cache %s", ("down",), None)
    token = current_request_id.set("req-42")
    try:
        RequestIdLogFilter().filter(record)
    finally:
        current_request_id.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-42" and line["message"] == "cache down"
    assert line["level"] == "WARNING" and line["logger"] == "mlapi"
