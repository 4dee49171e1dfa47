"""IDOR: every route that names an object answers 404 for another subscriber's object.

Subscriber A owns a key and a finished job; subscriber B asks for them by id through every
object route of the API (JWT and API key), the usage key filter and the portal. Each case is
checked against its control: the same request by A is not a 404, so the test cannot pass
because a route is simply missing. Nothing of A's may change.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from keys.models import ApiKey
from predictions.models import BatchJob
from tests.factories import ApiKeyFactory, SubscriptionFactory

TODAY = datetime.now(UTC).date().isoformat()

# (method, path) with {key} / {job} for A's objects; the plane decides the credential.
API_KEY_ROUTES = [
    ("get", "/api/v1/keys/{key}"),
    ("delete", "/api/v1/keys/{key}"),
    ("post", "/api/v1/keys/{key}/rotate"),
    ("get", f"/api/v1/usage?start={TODAY}&end={TODAY}&key={{key}}"),
]
API_JOB_ROUTES = [
    ("get", "/api/v1/jobs/{job}"),
    ("get", "/api/v1/jobs/{job}/results"),
    ("post", "/api/v1/jobs/{job}/cancel"),
]
PORTAL_ROUTES = [
    ("get", "/portal/keys/{key}/revoke/"),
    ("post", "/portal/keys/{key}/revoke/"),
    ("get", "/portal/keys/{key}/rotate/"),
    ("post", "/portal/keys/{key}/rotate/"),
    ("get", "/portal/jobs/{job}/status"),
    ("post", "/portal/jobs/{job}/cancel/"),
    ("get", "/portal/jobs/{job}/results.csv"),
]


@pytest.fixture
def owned(demo_models):
    """A's key and finished job (results on disk), and B's subscription."""
    victim = SubscriptionFactory()
    key = ApiKeyFactory(subscription=victim)
    results = "idor-results.csv"
    (settings.DATA_DIR / results).write_text("a,prediction,error\n1,setosa,\n")
    job = BatchJob.objects.create(
        subscription=victim,
        api_key=key,
        model_version=demo_models["iris"],
        status="succeeded",
        input_path="idor-input.csv",
        input_format="csv",
        rows_total=1,
        rows_done=1,
        results_path=results,
    )
    return {"victim": victim, "key": key, "job": job, "attacker": SubscriptionFactory()}


def jwt_client(subscription) -> APIClient:
    client = APIClient()
    access = RefreshToken.for_user(subscription.user).access_token
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def key_client(subscription) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=ApiKeyFactory(subscription=subscription).plaintext)
    return client


def portal_client(subscription) -> Client:
    client = Client()
    client.force_login(subscription.user)
    return client


def call(client, method: str, template: str, owned: dict):
    path = template.format(key=owned["key"].pk, job=owned["job"].pk)
    return getattr(client, method)(path)


def assert_untouched(owned: dict) -> None:
    key = ApiKey.objects.get(pk=owned["key"].pk)
    assert key.revoked_at is None and key.rotated_to_id is None
    job = BatchJob.objects.get(pk=owned["job"].pk)
    assert job.status == "succeeded" and not job.cancel_requested


@pytest.mark.parametrize(("method", "path"), API_KEY_ROUTES)
def test_another_subscribers_key_is_not_found_through_the_api(owned, method, path):
    response = call(jwt_client(owned["attacker"]), method, path, owned)
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    assert_untouched(owned)
    control = path.removesuffix("/rotate")  # read back what the attacker aimed at
    assert call(jwt_client(owned["victim"]), "get", control, owned).status_code == 200


@pytest.mark.parametrize("make_client", [jwt_client, key_client], ids=["jwt", "api_key"])
@pytest.mark.parametrize(("method", "path"), API_JOB_ROUTES)
def test_another_subscribers_job_is_not_found_through_the_api(owned, make_client, method, path):
    response = call(make_client(owned["attacker"]), method, path, owned)
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    assert_untouched(owned)
    control = call(make_client(owned["victim"]), method, path, owned)
    assert control.status_code in {200, 409}, control.content  # 409: cancel after success


def test_lists_show_only_the_callers_own_objects(owned):
    attacker = jwt_client(owned["attacker"])
    key_ids = {k["id"] for k in attacker.get("/api/v1/keys").json()["results"]}
    assert owned["key"].pk not in key_ids
    job_ids = {j["id"] for j in attacker.get("/api/v1/jobs").json()["results"]}
    assert str(owned["job"].pk) not in job_ids


@pytest.mark.parametrize(("method", "path"), PORTAL_ROUTES)
def test_another_subscribers_objects_are_not_found_in_the_portal(owned, method, path):
    response = call(portal_client(owned["attacker"]), method, path, owned)
    assert response.status_code == 404
    assert_untouched(owned)
    if method == "get":
        assert call(portal_client(owned["victim"]), method, path, owned).status_code == 200


@pytest.mark.parametrize("path", ["/portal/usage/", "/portal/usage/export.csv"])
def test_the_portal_usage_key_filter_refuses_another_subscribers_key(owned, path):
    attacker = portal_client(owned["attacker"])
    response = attacker.get(path, {"start": TODAY, "end": TODAY, "key": owned["key"].pk})
    assert response.status_code in {400, 404}


# --- organizations (§9): another organization's objects, through the attacker's own org and
# through the victim's org slug (where the attacker is no member) ---

ORG_API_ROUTES = [
    ("get", "/api/v1/orgs/{org}"),
    ("get", "/api/v1/orgs/{org}/members"),
    ("patch", "/api/v1/orgs/{org}/members/{member}"),
    ("delete", "/api/v1/orgs/{org}/members/{member}"),
    ("get", "/api/v1/orgs/{org}/invitations"),
    ("post", "/api/v1/orgs/{org}/invitations"),
    ("delete", "/api/v1/orgs/{org}/invitations/{invitation}"),
    ("get", "/api/v1/orgs/{org}/keys"),
    ("post", "/api/v1/orgs/{org}/keys"),
    ("get", "/api/v1/orgs/{org}/keys/{key}"),
    ("patch", "/api/v1/orgs/{org}/keys/{key}"),
    ("delete", "/api/v1/orgs/{org}/keys/{key}"),
    ("post", "/api/v1/orgs/{org}/keys/{key}/rotate"),
    ("get", f"/api/v1/orgs/{{org}}/usage?start={TODAY}&end={TODAY}"),
    ("get", "/api/v1/orgs/{org}/audit"),
]
ORG_PORTAL_ROUTES = [
    ("get", "/portal/orgs/{org}/members/"),
    ("post", "/portal/orgs/{org}/members/"),
    ("post", "/portal/orgs/{org}/members/{member}/role/"),
    ("post", "/portal/orgs/{org}/members/{member}/remove/"),
    ("post", "/portal/orgs/{org}/invitations/{invitation}/revoke/"),
    ("get", "/portal/orgs/{org}/audit/"),
]


def _with_object(routes):
    return [r for r in routes if "{" in r[1].replace("{org}", "")]


# Through the victim's slug every route is a 404; through the attacker's own slug, those
# that name one of the victim's objects.
ORG_API_CASES = [("victim_slug", *r) for r in ORG_API_ROUTES] + [
    ("own_slug", *r) for r in _with_object(ORG_API_ROUTES)
]
ORG_PORTAL_CASES = [("victim_slug", *r) for r in ORG_PORTAL_ROUTES] + [
    ("own_slug", *r) for r in _with_object(ORG_PORTAL_ROUTES)
]
ORG_BODIES = {"patch": {"role": "viewer", "name": "pwned"}, "post": {"email": "x@example.com"}}


@pytest.fixture
def orgs(db):
    """A victim team (owner, a developer, a pending invitation, a key) and an attacker who
    owns a team of their own."""
    from keys.models import Invitation
    from keys.orgs import invite_member
    from tests.factories import UserFactory, team_organization

    victim_owner, developer = UserFactory(), UserFactory()
    victim = team_organization(owner=victim_owner, members={developer: "developer"})
    invitation, _ = invite_member(
        organization=victim, email="friend@example.com", role="viewer", actor=victim_owner,
        actor_role="owner", base_url="http://testserver/",
    )  # fmt: skip
    key = ApiKeyFactory(subscription=victim.subscription, created_by=developer)
    attacker = UserFactory()
    attacker_org = team_organization(owner=attacker)
    return {
        "victim": victim,
        "victim_owner": victim_owner,
        "member": developer.pk,
        "invitation": invitation.pk,
        "key": key.pk,
        "attacker": attacker,
        "attacker_org": attacker_org,
        "invitations": Invitation.objects.count(),
    }


def org_path(template: str, orgs: dict, slug: str) -> str:
    return template.format(
        org=slug, member=orgs["member"], invitation=orgs["invitation"], key=orgs["key"]
    )


def assert_org_untouched(orgs: dict) -> None:
    from keys.models import Invitation, Membership

    key = ApiKey.objects.get(pk=orgs["key"])
    assert key.revoked_at is None and key.rotated_to_id is None and key.name != "pwned"
    member = Membership.objects.get(organization=orgs["victim"], user_id=orgs["member"])
    assert member.role == "developer"
    assert Invitation.objects.count() == orgs["invitations"]
    assert ApiKey.objects.filter(subscription=orgs["victim"].subscription).count() == 1


def user_api_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.mark.parametrize(("through", "method", "path"), ORG_API_CASES)
def test_another_organizations_objects_are_not_found_through_the_api(orgs, through, method, path):
    slug = orgs["victim"].slug if through == "victim_slug" else orgs["attacker_org"].slug
    client = user_api_client(orgs["attacker"])
    response = getattr(client, method)(
        org_path(path, orgs, slug), ORG_BODIES.get(method), format="json"
    )
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    assert_org_untouched(orgs)
    if method == "get":  # control: the victim's owner sees it
        control = user_api_client(orgs["victim_owner"]).get(
            org_path(path, orgs, orgs["victim"].slug)
        )
        assert control.status_code == 200


@pytest.mark.parametrize(("through", "method", "path"), ORG_PORTAL_CASES)
def test_another_organizations_objects_are_not_found_in_the_portal(orgs, through, method, path):
    slug = orgs["victim"].slug if through == "victim_slug" else orgs["attacker_org"].slug
    client = Client()
    client.force_login(orgs["attacker"])
    response = getattr(client, method)(org_path(path, orgs, slug), {"role": "viewer"})
    assert response.status_code == 404
    assert_org_untouched(orgs)
    if method == "get":
        control = Client()
        control.force_login(orgs["victim_owner"])
        assert control.get(org_path(path, orgs, orgs["victim"].slug)).status_code == 200


def test_the_portal_keys_of_another_organization_are_not_found(orgs):
    client = Client()
    client.force_login(orgs["attacker"])
    for path in ("/portal/keys/{key}/revoke/", "/portal/keys/{key}/rotate/"):
        assert client.post(org_path(path, orgs, "")).status_code == 404
    assert client.post("/portal/orgs/switch/", {"slug": orgs["victim"].slug}).status_code == 404
    assert_org_untouched(orgs)
