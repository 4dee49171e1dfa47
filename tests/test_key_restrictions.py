"""Key restrictions (contract §10): models, scopes, IPs and origins, on every protocol, before
any quota is used; validation of what a key may be restricted to; CORS for browser callers."""

from __future__ import annotations

import orjson
import pytest
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from keys import limits
from keys.clientip import client_ip_from
from keys.services import create_api_key
from tests.factories import PlanFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
HOUSE_ROW = ["D", "N", "F"]


@pytest.fixture
def subscription(demo_models):
    return SubscriptionFactory(plan=PlanFactory())


def key_for(subscription, **restrictions) -> str:
    return create_api_key(subscription=subscription, restrictions=restrictions)[1]


def used(subscription) -> int:
    return limits.quota_status(subscription=subscription).used


def predict(key: str, model: str = "iris", row=None, **extra):
    row = row or (IRIS_ROW if model == "iris" else HOUSE_ROW)
    return APIClient().post(
        f"/api/v1/models/{model}/predict", {"instances": [row]}, format="json",
        HTTP_X_API_KEY=key, **extra,
    )  # fmt: skip


def v2_infer(key: str, model: str, **extra):
    if model == "iris":
        inputs = [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [IRIS_ROW]}]
    else:
        names = ["property_type", "old_new", "duration"]
        inputs = [
            {"name": n, "shape": [1], "datatype": "BYTES", "data": [v]}
            for n, v in zip(names, HOUSE_ROW, strict=True)
        ]
    body = orjson.dumps({"inputs": inputs})
    return Client().generic(
        "POST", f"/v2/models/{model}/infer", body, content_type="", HTTP_X_API_KEY=key, **extra
    )


def kserve(key: str, model: str, **extra):
    row = IRIS_ROW if model == "iris" else HOUSE_ROW
    body = orjson.dumps({"instances": [row]})
    return Client().generic(
        "POST", f"/v1/models/{model}:predict", body, content_type="application/json",
        HTTP_X_API_KEY=key, **extra,
    )  # fmt: skip


def assert_refused(reply):
    assert reply.status_code == 403, reply.content
    assert reply.json()["code"] == "permission_denied"


@pytest.mark.parametrize("call", [predict, v2_infer, kserve])
def test_a_key_restricted_to_iris_is_refused_house_price_on_every_protocol_without_quota(
    subscription, call
):
    key = key_for(subscription, models=["iris"])
    assert call(key, "iris").status_code == 200
    assert used(subscription) == 1
    assert_refused(call(key, "house-price"))
    assert used(subscription) == 1


def test_a_model_restricted_key_lists_and_describes_only_its_models(subscription):
    key = key_for(subscription, models=["iris"])
    client = APIClient(HTTP_X_API_KEY=key)
    names = [m["name"] for m in client.get("/api/v1/models").json()["results"]]
    assert names == ["iris"]
    assert_refused(client.get("/api/v1/models/house-price"))
    assert_refused(client.get("/v2/models/house-price"))


def test_scopes_limit_what_a_key_does(subscription):
    predict_only = APIClient(HTTP_X_API_KEY=key_for(subscription, scopes=["predict"]))
    assert_refused(predict_only.get("/api/v1/models"))
    assert_refused(predict_only.get("/api/v1/models/iris"))
    assert_refused(predict_only.get("/api/v1/jobs"))
    jobs = predict_only.post(
        "/api/v1/jobs", {"model": "iris", "instances": [IRIS_ROW]}, format="json"
    )
    assert_refused(jobs)
    assert used(subscription) == 0
    reader = key_for(subscription, scopes=["models:read"])
    assert APIClient(HTTP_X_API_KEY=reader).get("/api/v1/models/iris").status_code == 200
    assert_refused(predict(reader))


def test_a_jobs_key_restricted_to_iris_cannot_submit_house_price_jobs(subscription):
    client = APIClient(HTTP_X_API_KEY=key_for(subscription, models=["iris"], scopes=["jobs"]))
    refused = client.post(
        "/api/v1/jobs", {"model": "house-price", "instances": [HOUSE_ROW]}, format="json"
    )
    assert_refused(refused)
    assert used(subscription) == 0


def test_an_ip_restricted_key_works_only_from_its_networks(subscription):
    key = key_for(subscription, allowed_ips=["203.0.113.0/24", "2001:db8::/32"])
    assert predict(key, REMOTE_ADDR="203.0.113.7").status_code == 200
    assert predict(key, REMOTE_ADDR="2001:db8::1").status_code == 200
    assert_refused(predict(key, REMOTE_ADDR="198.51.100.1"))
    assert_refused(v2_infer(key, "iris", REMOTE_ADDR="198.51.100.1"))
    # A forged X-Forwarded-For from an untrusted peer changes nothing.
    assert_refused(predict(key, REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.7"))
    assert used(subscription) == 2


def test_behind_a_trusted_proxy_the_forwarded_client_address_counts(subscription, settings):
    settings.MLAPI_TRUSTED_PROXIES = ["10.0.0.0/8"]
    key = key_for(subscription, allowed_ips=["203.0.113.7"])
    ok = predict(key, REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.7")
    assert ok.status_code == 200
    refused = predict(key, REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="203.0.113.7, 1.1.1.1")
    assert_refused(refused)


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        ("1.2.3.4", "", [], "1.2.3.4"),
        ("1.2.3.4", "9.9.9.9", [], "1.2.3.4"),  # no trusted proxies: the header is ignored
        ("10.0.0.1", "9.9.9.9", ["10.0.0.0/8"], "9.9.9.9"),
        ("10.0.0.1", "8.8.8.8, 9.9.9.9, 10.0.0.2", ["10.0.0.0/8"], "9.9.9.9"),
        ("1.2.3.4", "9.9.9.9", ["10.0.0.0/8"], "1.2.3.4"),  # peer not a trusted proxy
        ("10.0.0.1", "10.0.0.3", ["10.0.0.0/8"], "10.0.0.3"),  # only proxies: the leftmost
    ],
)
def test_the_client_ip_is_the_peer_or_what_a_trusted_proxy_saw(
    settings, peer, forwarded, trusted, client
):
    settings.MLAPI_TRUSTED_PROXIES = trusted
    assert client_ip_from(peer, forwarded) == client


def test_an_origin_restricted_key_needs_a_listed_origin(subscription):
    key = key_for(subscription, allowed_origins=["https://app.example.com"])
    assert predict(key, HTTP_ORIGIN="https://app.example.com").status_code == 200
    assert_refused(predict(key, HTTP_ORIGIN="https://evil.example.com"))
    assert_refused(predict(key))  # no Origin: not a browser, and the key is for browsers


def test_jwt_callers_are_not_restricted(subscription):
    client = APIClient()
    token = RefreshToken.for_user(subscription.user).access_token
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/models").status_code == 200


def test_patching_restrictions_takes_effect_for_the_next_call(subscription):
    from keys.models import ApiKey

    key = key_for(subscription)
    assert predict(key, "house-price").status_code == 200
    owner = APIClient()
    owner.force_login(subscription.user)
    api_key = ApiKey.objects.get(subscription=subscription)
    slug = subscription.organization.slug
    reply = owner.patch(
        f"/api/v1/orgs/{slug}/keys/{api_key.pk}", {"models": ["iris"]}, format="json"
    )
    assert reply.status_code == 200, reply.content
    assert reply.json()["models"] == ["iris"]
    assert_refused(predict(key, "house-price"))


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"models": ["house-price"]}, "models[0]"),  # the plan covers only iris
        ({"models": []}, "models"),
        ({"models": "iris"}, "models"),
        ({"scopes": ["predict", "admin"]}, "scopes[1]"),
        ({"scopes": []}, "scopes"),
        ({"allowed_ips": ["10.0.0.0/33"]}, "allowed_ips[0]"),
        ({"allowed_ips": ["not-an-ip"]}, "allowed_ips[0]"),
        ({"allowed_ips": [42]}, "allowed_ips[0]"),
        ({"allowed_origins": ["http://app.example.com"]}, "allowed_origins[0]"),
        ({"allowed_origins": ["https://app.example.com/path"]}, "allowed_origins[0]"),
        ({"allowed_origins": ["app.example.com"]}, "allowed_origins[0]"),
        ({"allowed_origins": ["https://app.example.com:99999"]}, "allowed_origins[0]"),
        ({"models": ["iris", "ir\x00is"]}, "models[1]"),  # PostgreSQL would refuse the NUL
        ({"allowed_ips": ["10.0.0.1\x00"]}, "allowed_ips[0]"),
    ],
)
def test_bad_restrictions_are_a_400_naming_the_entry(demo_models, payload, field):
    subscription = SubscriptionFactory(plan=PlanFactory(all_models=False, model_names=["iris"]))
    client = APIClient()
    client.force_login(subscription.user)
    reply = client.post("/api/v1/keys", payload, format="json")
    assert reply.status_code == 400, reply.content
    assert reply.json()["code"] == "validation_error"
    assert [e["field"] for e in reply.json()["errors"]] == [field]
    assert not subscription.keys.exists()


def test_restrictions_are_normalized_and_shown_in_key_details(subscription):
    client = APIClient()
    client.force_login(subscription.user)
    payload = {
        "models": ["iris"],
        "scopes": ["models:read", "predict"],
        "allowed_ips": ["10.1.2.3/8", "192.0.2.1"],
        "allowed_origins": ["https://App.Example.com:443"],
    }
    created = client.post("/api/v1/keys", payload, format="json").json()
    detail = client.get(f"/api/v1/keys/{created['id']}").json()
    assert detail["models"] == ["iris"]
    assert detail["scopes"] == ["predict", "models:read"]
    assert detail["allowed_ips"] == ["10.0.0.0/8", "192.0.2.1/32"]
    assert detail["allowed_origins"] == ["https://app.example.com"]
    unrestricted = client.post("/api/v1/keys", {}, format="json").json()
    assert unrestricted["models"] is None
    assert unrestricted["scopes"] == ["predict", "jobs", "models:read"]


def test_cors_preflight_on_the_data_plane_allows_listed_origins(settings, subscription):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    preflight = Client().options(
        "/api/v1/models/iris/predict",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-api-key, content-type",
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == "https://app.example.com"
    allowed = preflight["Access-Control-Allow-Headers"].lower()
    assert {"x-api-key", "authorization", "content-type"} <= {h.strip() for h in allowed.split(",")}
    reply = predict(key_for(subscription), HTTP_ORIGIN="https://app.example.com")
    assert reply["Access-Control-Allow-Origin"] == "https://app.example.com"
    exposed = reply["Access-Control-Expose-Headers"].lower()
    assert "ratelimit" in exposed and "ratelimit-policy" in exposed and "retry-after" in exposed
    other = Client().options(
        "/api/v1/models/iris/predict",
        HTTP_ORIGIN="https://evil.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert "Access-Control-Allow-Origin" not in other


def test_cors_is_not_offered_on_the_management_plane(settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    preflight = Client().options(
        "/api/v1/keys",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert "Access-Control-Allow-Origin" not in preflight
