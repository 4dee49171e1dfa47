"""v1 predict: correct answers, version pinning, default switches, and the response shape."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris

from predictions.demo import IRIS_FEATURES, IRIS_SPECIES, train_house_price, train_iris
from predictions.inference import get_predictor
from predictions.registry import register_model_version, set_default_version

pytestmark = pytest.mark.django_db

IRIS_URL = "/api/v1/models/iris/predict"
HOUSE_URL = "/api/v1/models/house-price/predict"


def post(client, url, body, key):
    return client.post(url, body, content_type="application/json", HTTP_X_API_KEY=key)


def test_known_iris_flowers_come_back_with_their_species(client, demo_models, api_key):
    data = load_iris()
    picks = [0, 10, 49, 50, 60, 99, 100, 120, 149]
    instances = [dict(zip(IRIS_FEATURES, data.data[i].tolist(), strict=True)) for i in picks]
    response = post(client, IRIS_URL, {"instances": instances}, api_key)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == "iris" and body["version"] == "1"
    assert body["predictions"] == [IRIS_SPECIES[data.target[i]] for i in picks]
    assert "probabilities" not in body


def test_array_instances_in_schema_order_equal_object_instances(client, demo_models, api_key):
    as_objects = [
        {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}
    ]
    as_arrays = [[6.3, 3.3, 6.0, 2.5]]
    a = post(client, IRIS_URL, {"instances": as_objects}, api_key).json()
    b = post(client, IRIS_URL, {"instances": as_arrays}, api_key).json()
    assert a["predictions"] == b["predictions"] == ["virginica"]


def test_probabilities_are_returned_on_request_one_row_per_instance(client, demo_models, api_key):
    body = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]}
    body["parameters"] = {"probabilities": True}
    reply = post(client, IRIS_URL, body, api_key).json()
    assert len(reply["probabilities"]) == 2
    for row in reply["probabilities"]:
        assert len(row) == 3 and abs(sum(row) - 1) < 1e-4
    assert reply["probabilities"][0][0] > 0.9


def test_probabilities_equal_the_sklearn_forest_and_a_sure_class_is_one(
    client, demo_models, api_key
):
    forest, _ = train_iris()  # seeded: the same fit as the registered version
    rows = load_iris().data[[0, 60, 120, 149]].tolist()
    body = {"instances": rows, "parameters": {"probabilities": True}}
    reply = post(client, IRIS_URL, body, api_key).json()
    expected = forest.predict_proba(np.asarray(rows))
    assert np.allclose(reply["probabilities"], expected, rtol=1e-5, atol=1e-6)
    assert reply["probabilities"][0] == [1.0, 0.0, 0.0]


def test_house_prices_equal_the_sklearn_pipeline_within_1e_5(client, demo_models, api_key):
    pipeline, _ = train_house_price()  # seeded: the same fit as the registered version
    rows = [
        {"property_type": t, "old_new": o, "duration": d}
        for t in "DSTFO"
        for o in "YN"
        for d in "FL"
    ]
    response = post(client, HOUSE_URL, {"instances": rows}, api_key)
    assert response.status_code == 200, response.content
    import pandas as pd

    expected = pipeline.predict(pd.DataFrame(rows))
    np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-5)


def test_pinned_version_is_served_even_after_the_default_changes(client, demo_models, api_key):
    from predictions.demo import train_iris

    iris, schema = train_iris()
    v2 = register_model_version(name="iris", estimator=iris, input_schema=schema, version="2")
    assert not v2.is_default
    pinned = post(
        client,
        "/api/v1/models/iris/versions/2/predict",
        {"instances": [[5.1, 3.5, 1.4, 0.2]]},
        api_key,
    )
    assert pinned.status_code == 200 and pinned.json()["version"] == "2"
    assert (
        post(client, IRIS_URL, {"instances": [[5.1, 3.5, 1.4, 0.2]]}, api_key).json()["version"]
        == "1"
    )


def test_default_switch_is_visible_to_the_next_request(client, demo_models, api_key):
    from predictions.demo import train_iris

    iris, schema = train_iris()
    v2 = register_model_version(name="iris", estimator=iris, input_schema=schema, version="2")
    assert (
        post(client, IRIS_URL, {"instances": [[5.1, 3.5, 1.4, 0.2]]}, api_key).json()["version"]
        == "1"
    )
    set_default_version(model_version=v2)
    assert (
        post(client, IRIS_URL, {"instances": [[5.1, 3.5, 1.4, 0.2]]}, api_key).json()["version"]
        == "2"
    )


def test_default_switch_by_another_process_is_noticed_through_the_cache_stamp(
    demo_models, monkeypatch
):
    """Another process switches the default: only the shared stamp tells this one."""
    from predictions import inference
    from predictions.demo import train_iris
    from predictions.models import ModelVersion

    iris, schema = train_iris()
    register_model_version(name="iris", estimator=iris, input_schema=schema, version="2")
    assert get_predictor("iris").version == "1"
    monkeypatch.setattr(inference, "CHECK_INTERVAL_S", 3600.0)
    # what the other process does: update rows (no signal here) and publish a new stamp
    ModelVersion.objects.filter(model__name="iris").update(is_default=False)
    ModelVersion.objects.filter(model__name="iris", version="2").update(is_default=True)
    inference._write_stamp()
    assert get_predictor("iris").version == "1"  # within the check interval: still cached
    monkeypatch.setattr(inference, "CHECK_INTERVAL_S", 0.0)
    assert get_predictor("iris").version == "2"


def test_models_list_and_detail_show_schema_versions_and_output(client, demo_models, api_key):
    listing = client.get("/api/v1/models", HTTP_X_API_KEY=api_key).json()
    assert listing["count"] == 2
    assert [m["name"] for m in listing["results"]] == ["house-price", "iris"]
    detail = client.get("/api/v1/models/iris", HTTP_X_API_KEY=api_key).json()
    assert detail["default_version"] == "1"
    assert detail["task"] == "classification"
    assert [f["name"] for f in detail["input_schema"]["features"]] == IRIS_FEATURES
    assert detail["output"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert detail["versions"][0]["runtime"] == "onnx"
    house = client.get("/api/v1/models/house-price", HTTP_X_API_KEY=api_key).json()
    features = house["input_schema"]["features"]
    assert features[0] == {"name": "property_type", "type": "category", "categories": list("DSTFO")}
    assert "synthetic" in house["description"].lower()


def test_predict_sets_usage_attributes_and_quota_headers(client, demo_models, api_key):
    response = post(client, IRIS_URL, {"instances": [[5.1, 3.5, 1.4, 0.2]] * 3}, api_key)
    assert response.status_code == 200
    assert "RateLimit" in response and "RateLimit-Policy" in response
    meter = response.wsgi_request.mlapi_meter
    assert (meter.model, meter.version, meter.predictions, meter.protocol) == ("iris", "1", 3, "v1")
