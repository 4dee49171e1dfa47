"""The admin offers the operator API's rollout actions and shows per-version numbers."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from predictions.demo import IRIS_SPECIES
from predictions.models import MLModel, ModelVersion
from predictions.registry import register_model_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def iris_v2(demo_models) -> MLModel:
    data = load_iris()
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(
        data.data, IRIS_SPECIES[data.target]
    )
    register_model_version(name="iris", estimator=tree, version="2")
    return MLModel.objects.get(name="iris")


def change_url(model: MLModel) -> str:
    return f"/admin/predictions/mlmodel/{model.pk}/change/"


def form(**fields) -> dict:
    base = {
        "description": "iris",
        "default_version": "1",
        "canary": "",
        "canary_percent": "0",
        "shadow": "",
        "shadow_percent": "0",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }
    return base | fields


def test_the_model_page_shows_traffic_and_shadow_tables(admin_client, iris_v2, client, api_key):
    client.post("/api/v1/models/iris/predict", {"instances": [[5.1, 3.5, 1.4, 0.2]]},
                content_type="application/json", HTTP_X_API_KEY=api_key)  # fmt: skip
    page = admin_client.get(change_url(iris_v2)).content.decode()
    assert 'class="rollout-stats"' in page and 'class="shadow-agreement"' in page
    assert "<td>1</td><td>1</td><td>0.0%</td>" in page  # version 1: one request, no errors


def test_the_admin_sets_a_canary_and_a_shadow_like_the_api(admin_client, iris_v2):
    reply = admin_client.post(
        change_url(iris_v2), form(canary="2", canary_percent="25", shadow="2", shadow_percent="5")
    )
    assert reply.status_code == 302, reply.content.decode()[-3000:]
    model = MLModel.objects.get(pk=iris_v2.pk)
    assert model.canary_version.version == "2" and model.canary_percent == 25
    assert model.shadow_percent == 5 and model.rollout_revision == 1


def test_the_admin_refuses_a_canary_equal_to_the_default(admin_client, iris_v2):
    reply = admin_client.post(change_url(iris_v2), form(canary="1", canary_percent="10"))
    assert reply.status_code == 200 and "must differ from the default" in reply.content.decode()
    assert MLModel.objects.get(pk=iris_v2.pk).canary_version_id is None


def test_the_deprecate_action_sets_deprecation_and_sunset(admin_client, iris_v2):
    v2 = ModelVersion.objects.get(model=iris_v2, version="2")
    admin_client.post(
        "/admin/predictions/modelversion/",
        {"action": "deprecate", "_selected_action": [v2.pk]},
    )
    v2.refresh_from_db()
    assert v2.deprecated_at is not None and v2.sunset_at > v2.deprecated_at
