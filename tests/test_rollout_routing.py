"""Unpinned predictions follow the rollout; deprecated versions say so; retired ones are gone."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.http import http_date
from prometheus_client import REGISTRY
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from predictions import rollout, shadow
from predictions.demo import IRIS_SPECIES
from predictions.inference import get_predictor
from predictions.models import MLModel, ModelVersion
from predictions.operations import set_rollout
from predictions.registry import register_model_version
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db
ROW = [5.1, 3.5, 1.4, 0.2]


def add_version(label: str, depth: int = 2) -> ModelVersion:
    data = load_iris()
    tree = DecisionTreeClassifier(max_depth=depth, random_state=0)
    tree.fit(data.data, IRIS_SPECIES[data.target])
    return register_model_version(name="iris", estimator=tree, version=label)


def roll(**spec) -> None:
    set_rollout(model=MLModel.objects.get(name="iris"), spec={"default": "1"} | spec)


def predict(client, key, url="/api/v1/models/iris/predict"):
    return client.post(url, {"instances": [ROW]}, content_type="application/json",
                       HTTP_X_API_KEY=key)  # fmt: skip


def test_a_full_canary_answers_every_protocol_and_is_recorded(client, demo_models, api_key):
    add_version("2")
    roll(canary={"version": "2", "percent": 100})
    assert predict(client, api_key).json()["version"] == "2"
    v2 = client.post(
        "/v2/models/iris/infer",
        {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ROW}]},
        content_type="application/json",
        HTTP_X_API_KEY=api_key,
    )
    assert v2.status_code == 200 and v2.json()["model_version"] == "2"
    pinned = predict(client, api_key, "/api/v1/models/iris/versions/1/predict")
    assert pinned.json()["version"] == "1"
    versions = list(UsageRecord.objects.order_by("time").values_list("model_version", flat=True))
    assert versions == ["2", "2", "1"]


def test_without_a_canary_the_default_answers(client, demo_models, api_key):
    add_version("2")
    roll(canary={"version": "2", "percent": 0})
    assert predict(client, api_key).json()["version"] == "1"


def test_assignment_is_sticky_per_caller_and_near_the_percent():
    callers = [f"key:{i}" for i in range(4000)]
    chosen = {c: rollout.bucket(c, "iris", "2") < 1000 for c in callers}  # 10 %
    assert all((rollout.bucket(c, "iris", "2") < 1000) == chosen[c] for c in callers[:50])
    share = sum(chosen.values()) / len(callers)
    assert 0.08 < share < 0.12
    ramped = {c for c in callers if rollout.bucket(c, "iris", "2") < 2000}  # ramp to 20 %
    assert {c for c, on in chosen.items() if on} <= ramped  # nobody leaves the canary


def test_choosing_a_version_on_a_warm_process_does_no_query(demo_models, django_assert_num_queries):
    add_version("2")
    roll(canary={"version": "2", "percent": 50})
    rollout.choose_version("iris", caller_id="key:1")  # warm
    with django_assert_num_queries(0):
        picks = Counter(rollout.choose_version("iris", caller_id=f"key:{i}") for i in range(200))
    assert set(picks) == {"1", "2"}


def test_batch_jobs_use_the_default_unless_pinned(client, demo_models, api_key):
    add_version("2")
    roll(canary={"version": "2", "percent": 100})
    body = {"model": "iris", "instances": [ROW]}
    reply = client.post("/api/v1/jobs", body, content_type="application/json",
                        HTTP_X_API_KEY=api_key)  # fmt: skip
    assert reply.status_code == 202, reply.content
    assert reply.json()["version"] == "1"


def test_a_deprecated_version_sends_deprecation_and_sunset_headers(client, demo_models, api_key):
    deprecated = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    sunset = deprecated + timedelta(days=30)
    ModelVersion.objects.filter(model__name="iris", version="1").update(
        deprecated_at=deprecated, sunset_at=sunset
    )
    from predictions.inference import registry_changed

    registry_changed()
    reply = predict(client, api_key)
    assert reply.status_code == 200
    assert reply["Deprecation"] == f"@{int(deprecated.timestamp())}"
    assert reply["Sunset"] == http_date(sunset.timestamp())
    add_version("2")
    fresh = predict(client, api_key, "/api/v1/models/iris/versions/2/predict")
    assert "Deprecation" not in fresh and "Sunset" not in fresh


def test_after_its_sunset_a_version_answers_404_saying_it_was_retired(client, demo_models, api_key):
    add_version("2")
    past = timezone.now() - timedelta(minutes=1)
    ModelVersion.objects.filter(model__name="iris", version="2").update(
        deprecated_at=past - timedelta(days=1), sunset_at=past
    )
    from predictions.inference import registry_changed

    registry_changed()
    reply = predict(client, api_key, "/api/v1/models/iris/versions/2/predict")
    assert reply.status_code == 404 and "retired" in reply.json()["detail"]
    v2 = client.post("/v2/models/iris/versions/2/infer", {}, content_type="application/json",
                     HTTP_X_API_KEY=api_key)  # fmt: skip
    assert v2.status_code == 404 and "retired" in v2.json()["error"]


def test_a_shadow_scores_off_the_request_path_and_counts_agreement(client, demo_models, api_key):
    add_version("3", depth=3)
    roll(shadow={"version": "3", "percent": 100})
    labels = {"model": "iris", "version": "1", "shadow_version": "3"}

    def count(outcome: str) -> float:
        value = REGISTRY.get_sample_value(
            "mlapi_shadow_instances_total", labels | {"outcome": outcome}
        )
        return value or 0.0

    before = count("agree") + count("disagree")
    get_predictor("iris", "3")  # loaded here: the scorer thread cannot see this test's rows
    reply = predict(client, api_key)
    assert reply.json()["version"] == "1" and "shadow" not in reply.content.decode()
    assert shadow.wait_idle(10)
    assert count("agree") + count("disagree") == before + 1
    assert count("agree") >= 1  # a setosa flower: every tree agrees


def test_a_default_retired_on_schedule_does_not_make_the_node_unready(demo_models):
    from predictions.inference import models_ready, registry_changed

    past = timezone.now() - timedelta(minutes=1)
    ModelVersion.objects.filter(model__name="iris", version="1").update(
        deprecated_at=past - timedelta(days=1), sunset_at=past
    )
    registry_changed()
    assert models_ready() == (True, "ok")
