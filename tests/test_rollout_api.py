"""Operator API (CONTRACT §13): version upload, rollout, deprecation — and every refusal."""

from __future__ import annotations

import io
import pickle
from datetime import timedelta

import pytest
import skops.io as sio
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from predictions.demo import IRIS_SPECIES
from predictions.models import MLModel, ModelVersion
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
ROLLOUT = "/api/v1/models/iris/rollout"


def jwt_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def staff():
    return jwt_client(UserFactory(is_staff=True))


def small_tree(depth: int = 2) -> DecisionTreeClassifier:
    data = load_iris()
    return DecisionTreeClassifier(max_depth=depth, random_state=0).fit(
        data.data, IRIS_SPECIES[data.target]
    )


def upload(client, data: bytes, *, name: str = "iris", version: str = "2", filename="m.skops"):
    artifact = io.BytesIO(data)
    artifact.name = filename
    return client.post(
        f"/api/v1/models/{name}/versions",
        {"artifact": artifact, "version": version, "description": "a tree"},
        format="multipart",
    )


def add_version(label: str, depth: int = 2) -> ModelVersion:
    from predictions.registry import register_model_version

    return register_model_version(name="iris", estimator=small_tree(depth), version=label)


def assert_invalid(response, field: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error", body
    assert any(e["field"] == field for e in body["errors"]), body


def test_staff_upload_registers_a_version_and_creates_the_model_on_first_use(staff, demo_models):
    reply = upload(staff, sio.dumps(small_tree()), name="flowers", version="7")
    assert reply.status_code == 201, reply.content
    assert reply.json()["version"] == "7" and reply.json()["description"] == "a tree"
    model = MLModel.objects.get(name="flowers")
    assert model.versions.get().is_default  # the first version of a new model is its default
    again = upload(staff, sio.dumps(small_tree(3)), version="2")
    assert (
        again.status_code == 201
        and not ModelVersion.objects.get(model__name="iris", version="2").is_default
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (pickle.dumps(small_tree()), "pickle"),
        (b"PK\x03\x04 definitely not a zip", "skops"),
        (b"", "skops"),
    ],
    ids=["pickle", "corrupt", "empty"],
)
def test_pickles_and_corrupt_artifacts_are_refused_with_400(staff, demo_models, payload, message):
    reply = upload(staff, payload)
    assert_invalid(reply, "artifact")
    assert message in reply.json()["detail"]
    assert not ModelVersion.objects.filter(model__name="iris", version="2").exists()


class Sneaky(BaseEstimator, ClassifierMixin):
    """A class outside the allow-list (skops would have to import and trust it)."""

    def fit(self, X, y):
        self.classes_ = sorted(set(y))
        self.n_features_in_ = 4
        return self


def test_an_artifact_needing_untrusted_types_is_refused(staff, demo_models):
    reply = upload(staff, sio.dumps(Sneaky().fit([[0] * 4], ["a"])))
    assert_invalid(reply, "artifact")
    assert "untrusted" in reply.json()["detail"] and "Sneaky" in reply.json()["detail"]


def test_an_upload_over_the_limit_is_413(staff, demo_models, settings):
    settings.MLAPI_MAX_UPLOAD_BYTES = 2000
    reply = upload(staff, sio.dumps(small_tree(4)))
    assert reply.status_code == 413 and reply.json()["code"] == "payload_too_large"


def test_non_staff_users_and_api_keys_get_403_anonymous_401(demo_models, api_key):
    body = {"default": "1", "canary": None, "shadow": None}
    plain = jwt_client(UserFactory())
    assert plain.put(ROLLOUT, body, format="json").status_code == 403
    assert upload(plain, sio.dumps(small_tree())).status_code == 403
    patch = plain.patch("/api/v1/models/iris/versions/1", {}, format="json")
    assert patch.status_code == 403
    keyed = APIClient()
    keyed.credentials(HTTP_X_API_KEY=api_key)
    assert keyed.put(ROLLOUT, body, format="json").json()["code"] == "permission_denied"
    assert APIClient().put(ROLLOUT, body, format="json").status_code == 401


def test_rollout_is_applied_and_shown_in_the_model_detail(staff, demo_models, api_key):
    add_version("2")
    add_version("3", depth=3)
    body = {
        "default": "1",
        "canary": {"version": "2", "percent": 10},
        "shadow": {"version": "3", "percent": 100},
    }
    reply = staff.put(ROLLOUT, body, format="json")
    assert reply.status_code == 200, reply.content
    detail = APIClient().get("/api/v1/models/iris", HTTP_X_API_KEY=api_key).json()
    rollout = detail["rollout"]
    assert rollout["default"] == "1" and rollout["revision"] == 1
    assert rollout["canary"] == {"version": "2", "percent": 10.0}
    assert rollout["shadow"] == {"version": "3", "percent": 100.0}
    promoted = staff.put(ROLLOUT, {"default": "2", "canary": None, "shadow": None}, format="json")
    assert promoted.json()["default_version"] == "2"
    assert promoted.json()["rollout"]["canary"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"default": "1", "canary": {"version": "2", "percent": 101}}, "canary.percent"),
        ({"default": "1", "canary": {"version": "2", "percent": -1}}, "canary.percent"),
        ({"default": "1", "shadow": {"version": "2", "percent": "all"}}, "shadow.percent"),
        ({"default": "1", "canary": {"version": "1", "percent": 5}}, "canary.version"),
        ({"default": "1", "shadow": {"version": "1", "percent": 5}}, "shadow.version"),
        ({"default": "9"}, "default"),
        ({"default": "1", "canary": {"version": "9", "percent": 5}}, "canary.version"),
        ({"default": "1", "canary": "2"}, "canary"),
        ({"canary": None}, "default"),
        ({"default": "1", "weights": {}}, "weights"),
        ({"default": "old"}, "default"),
        ({"default": "1", "shadow": {"version": "old", "percent": 5}}, "shadow.version"),
    ],
)
def test_bad_rollouts_are_400_and_change_nothing(staff, demo_models, body, field):
    add_version("2")
    past = timezone.now() - timedelta(days=1)
    retired = add_version("old")
    ModelVersion.objects.filter(pk=retired.pk).update(
        deprecated_at=past - timedelta(days=1), sunset_at=past
    )
    assert_invalid(staff.put(ROLLOUT, body, format="json"), field)
    model = MLModel.objects.get(name="iris")
    assert model.rollout_revision == 0 and model.canary_version_id is None
    assert model.versions.get(is_default=True).version == "1"


def test_rollout_of_an_unknown_model_is_404(staff, demo_models):
    reply = staff.put("/api/v1/models/nope/rollout", {"default": "1"}, format="json")
    assert reply.status_code == 404


def test_patch_deprecates_and_sunset_before_deprecation_is_400(staff, demo_models):
    add_version("2")
    url = "/api/v1/models/iris/versions/2"
    soon, later = timezone.now() + timedelta(days=1), timezone.now() + timedelta(days=30)
    reply = staff.patch(
        url, {"deprecated_at": later.isoformat(), "sunset_at": soon.isoformat()}, format="json"
    )
    assert_invalid(reply, "sunset_at")
    ok = staff.patch(
        url,
        {"deprecated_at": soon.isoformat(), "sunset_at": later.isoformat(), "description": "old"},
        format="json",
    )
    assert ok.status_code == 200, ok.content
    assert ok.json()["description"] == "old" and ok.json()["sunset_at"].startswith(
        later.strftime("%Y-%m-%d")
    )
    assert_invalid(staff.patch(url, {"sunset_at": "tomorrow"}, format="json"), "sunset_at")
    assert_invalid(staff.patch(url, {"retired": True}, format="json"), "retired")
    assert staff.patch("/api/v1/models/iris/versions/9", {}, format="json").status_code == 404


def test_the_version_the_rollout_uses_cannot_be_retired_at_once(staff, demo_models):
    now = timezone.now().isoformat()
    reply = staff.patch("/api/v1/models/iris/versions/1", {"sunset_at": now}, format="json")
    assert_invalid(reply, "sunset_at")
