"""Bad input on /api/v1 predict gets a precise 4xx problem, never a 500 (CONTRACT.md section 4)."""

from __future__ import annotations

import pytest

from keys.limits import quota_status
from predictions.inference import clear_cache
from predictions.models import ModelVersion
from tests.conftest import make_subscriber_key
from tests.support.problems import assert_problem

pytestmark = pytest.mark.django_db

IRIS = "/api/v1/models/iris/predict"
HOUSE = "/api/v1/models/house-price/predict"
GOOD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def raw_post(client, url, raw: bytes | str, key, content_type="application/json"):
    return client.post(url, raw, content_type=content_type, HTTP_X_API_KEY=key)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "1" + "0" * 400])
def test_non_finite_numbers_even_as_json_literals_are_validation_errors(
    client, demo_models, api_key, literal
):
    raw = (
        '{"instances": [[5.1, 3.5, 1.4, 0.2], {"sepal_length": 5.1, "sepal_width": 3.5,'
        f' "petal_length": {literal}, "petal_width": 0.2}}]}}'
    )
    assert_problem(
        raw_post(client, IRIS, raw, api_key), 400, "validation_error", "instances[1].petal_length"
    )


@pytest.mark.parametrize(
    ("value", "why"),
    [("5.1", "string"), (True, "boolean"), (False, "boolean"), (None, "null"), ([1], "list")],
)
def test_numeric_features_refuse_strings_booleans_null_and_lists(
    client, demo_models, api_key, value, why
):
    instance = GOOD | {"sepal_width": value}
    response = client.post(
        IRIS,
        {"instances": [GOOD, GOOD, instance]},
        content_type="application/json",
        HTTP_X_API_KEY=api_key,
    )
    assert_problem(response, 400, "validation_error", "instances[2].sepal_width")


@pytest.mark.parametrize(
    ("instance", "field"),
    [
        ({k: v for k, v in GOOD.items() if k != "petal_width"}, "instances[0].petal_width"),
        (GOOD | {"colour": "blue"}, "instances[0].colour"),
        (GOOD | {"petal_length": 50.5}, "instances[0].petal_length"),
        (GOOD | {"petal_length": -0.1}, "instances[0].petal_length"),
        ([5.1, 3.5, 1.4], "instances[0]"),
        ([5.1, 3.5, 1.4, 0.2, 9.9], "instances[0]"),
        ("5.1,3.5,1.4,0.2", "instances[0]"),
        (7, "instances[0]"),
    ],
    ids=[
        "missing",
        "unknown",
        "above-max",
        "below-min",
        "short-array",
        "long-array",
        "string",
        "number",
    ],
)
def test_each_bad_instance_is_reported_at_its_path(client, demo_models, api_key, instance, field):
    response = client.post(
        IRIS, {"instances": [instance]}, content_type="application/json", HTTP_X_API_KEY=api_key
    )
    assert_problem(response, 400, "validation_error", field)


@pytest.mark.parametrize("value", ["X", "d", 1, None, "NaN"])
def test_unknown_categories_are_validation_errors(client, demo_models, api_key, value):
    instance = {"property_type": value, "old_new": "N", "duration": "F"}
    response = client.post(
        HOUSE, {"instances": [instance]}, content_type="application/json", HTTP_X_API_KEY=api_key
    )
    assert_problem(response, 400, "validation_error", "instances[0].property_type")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"instances": []}, "instances"),
        ({"instances": {"a": 1}}, "instances"),
        ({"instances": "5.1,3.5"}, "instances"),
        ({}, "instances"),
        ({"instances": [GOOD], "extra": 1}, "extra"),
        ({"instances": [GOOD], "parameters": [True]}, "parameters"),
        ({"instances": [GOOD], "parameters": {"probabilities": "yes"}}, "parameters.probabilities"),
        ({"instances": [GOOD], "parameters": {"probabilities": 1}}, "parameters.probabilities"),
        ({"instances": [GOOD], "parameters": {"temperature": 1}}, "parameters.temperature"),
        ([GOOD], ""),
        ('"instances"', ""),  # the test client sends strings as raw JSON text
        ("42", ""),
    ],
)
def test_malformed_bodies_are_validation_errors(client, demo_models, api_key, body, field):
    response = client.post(IRIS, body, content_type="application/json", HTTP_X_API_KEY=api_key)
    assert_problem(response, 400, "validation_error", field)


def test_more_instances_than_the_plan_allows_is_a_validation_error(client, demo_models):
    _, key = make_subscriber_key(plan_name="tiny", max_instances=2)
    response = client.post(
        IRIS, {"instances": [GOOD] * 3}, content_type="application/json", HTTP_X_API_KEY=key
    )
    assert_problem(response, 400, "validation_error", "instances")
    ok = client.post(
        IRIS, {"instances": [GOOD] * 2}, content_type="application/json", HTTP_X_API_KEY=key
    )
    assert ok.status_code == 200


@pytest.mark.parametrize("raw", ['{"instances": [', "{'instances': []}", "", "\xff", '{"a":1}}'])
def test_unparsable_json_is_invalid_json(client, demo_models, api_key, raw):
    assert_problem(raw_post(client, IRIS, raw, api_key), 400, "invalid_json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_is_415(client, demo_models, api_key, content_type):
    response = raw_post(
        client, IRIS, '{"instances": [[5.1, 3.5, 1.4, 0.2]]}', api_key, content_type=content_type
    )
    assert_problem(response, 415, "unsupported_media_type")


def test_bodies_over_the_limit_are_413(client, demo_models, api_key, settings):
    settings.MLAPI_MAX_REQUEST_BYTES = 100
    raw = '{"instances": [' + ",".join(["[5.1, 3.5, 1.4, 0.2]"] * 10) + "]}"
    assert_problem(raw_post(client, IRIS, raw, api_key), 413, "payload_too_large")


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/models/nope/predict",
        "/api/v1/models/iris/versions/9/predict",
        "/api/v1/models/nope",
    ],
)
def test_unknown_model_or_version_is_404(client, demo_models, api_key, url):
    method = client.get if not url.endswith("predict") else client.post
    kwargs = {"content_type": "application/json"} if method == client.post else {}
    response = method(
        url, {"instances": [GOOD]} if kwargs else None, HTTP_X_API_KEY=api_key, **kwargs
    )
    assert_problem(response, 404, "not_found")


def test_model_outside_the_plan_is_403(client, demo_models):
    _, key = make_subscriber_key(
        plan_name="house-only", all_models=False, model_names=["house-price"]
    )
    response = client.post(
        IRIS, {"instances": [GOOD]}, content_type="application/json", HTTP_X_API_KEY=key
    )
    assert_problem(response, 403, "permission_denied")
    assert_problem(client.get("/api/v1/models/iris", HTTP_X_API_KEY=key), 403, "permission_denied")
    listing = client.get("/api/v1/models", HTTP_X_API_KEY=key).json()
    assert [m["name"] for m in listing["results"]] == ["house-price"]


def test_predict_without_credentials_is_401(client, demo_models):
    response = client.post(IRIS, {"instances": [GOOD]}, content_type="application/json")
    assert_problem(response, 401, "not_authenticated")


@pytest.mark.parametrize("damage", ["hash", "missing"])
def test_a_model_whose_artifact_fails_verification_is_503(client, demo_models, api_key, damage):
    mv = demo_models["iris"]
    if damage == "hash":
        ModelVersion.objects.filter(pk=mv.pk).update(onnx_sha256="0" * 64)
    else:
        ModelVersion.objects.filter(pk=mv.pk).update(onnx_artifact="models/gone.onnx")
    clear_cache()
    response = client.post(
        IRIS, {"instances": [GOOD]}, content_type="application/json", HTTP_X_API_KEY=api_key
    )
    assert_problem(response, 503, "model_unavailable")


def test_prediction_past_the_timeout_is_504_and_refunds_the_quota(client, demo_models, settings):
    subscription, key = make_subscriber_key(plan_name="timeout")
    settings.MLAPI_PREDICT_TIMEOUT_S = 0.0
    response = client.post(
        IRIS, {"instances": [GOOD] * 5}, content_type="application/json", HTTP_X_API_KEY=key
    )
    assert_problem(response, 504, "prediction_timeout")
    assert quota_status(subscription=subscription).used == 0


def test_validation_errors_use_no_quota(client, demo_models):
    subscription, key = make_subscriber_key(plan_name="noquota")
    client.post(
        IRIS,
        {"instances": [GOOD, GOOD | {"petal_width": "x"}]},
        content_type="application/json",
        HTTP_X_API_KEY=key,
    )
    client.post(
        IRIS, {"instances": [GOOD] * 3}, content_type="application/json", HTTP_X_API_KEY=key
    )
    assert quota_status(subscription=subscription).used == 3
