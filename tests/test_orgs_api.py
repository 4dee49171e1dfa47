"""Organizations, members and roles (contract §9): who may do what, and the last-owner rule."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from keys.models import ApiKey, Membership, Organization, Subscription
from tests.factories import ApiKeyFactory, UserFactory, team_organization

pytestmark = pytest.mark.django_db


def as_user(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def team():
    """An organization with one member of each role."""
    users = {
        role: UserFactory(username=f"{role}-user")
        for role in ("owner", "admin", "developer", "viewer")
    }
    org = team_organization(
        owner=users["owner"],
        slug="acme",
        members={users[r]: r for r in ("admin", "developer", "viewer")},
    )
    return org, users


def test_signup_creates_a_personal_organization_owned_by_the_new_user():
    from django.core.cache import cache

    cache.clear()  # signups are rate limited per client address (other tests sign up too)
    client = APIClient()
    reply = client.post(
        "/api/v1/auth/signup",
        {"username": "ada", "email": "ada@example.com", "password": "correct-Horse-battery-9"},
        format="json",
    )
    assert reply.status_code == 201
    org = Organization.objects.get(slug="ada")
    assert Membership.objects.get(organization=org).role == "owner"
    assert Subscription.objects.get(organization=org).user.username == "ada"
    ada = org.memberships.get().user
    orgs = as_user(ada).get("/api/v1/orgs").json()
    assert orgs["count"] == 1
    assert orgs["results"][0]["slug"] == "ada"
    assert orgs["results"][0]["role"] == "owner"
    assert orgs["results"][0]["subscription"]["plan"] == "free"


def test_creating_an_organization_makes_the_creator_owner_on_a_free_subscription():
    user = UserFactory()
    reply = as_user(user).post("/api/v1/orgs", {"name": "Data Team"}, format="json")
    assert reply.status_code == 201, reply.content
    body = reply.json()
    assert body["slug"] == "data-team"
    assert body["role"] == "owner"
    assert body["subscription"]["plan"] == "free"
    assert body["subscription"]["status"] == "active"
    detail = as_user(user).get("/api/v1/orgs/data-team").json()
    assert detail["subscription"]["quota"]["limit"] == 1000


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x", "slug": "Not A Slug"}, "slug"),
        ({"name": "x", "slug": "taken"}, "slug"),
        ({"name": "x", "slug": "someone"}, "slug"),  # a username: it is their personal org's name
        ({"name": "x", "slug": "fine", "plan": "nope"}, "plan"),
        ({"slug": "fine"}, "name"),
    ],
)
def test_bad_organization_input_is_a_400_naming_the_field(payload, field):
    UserFactory(username="someone")
    team_organization(slug="taken")
    reply = as_user(UserFactory()).post("/api/v1/orgs", payload, format="json")
    assert reply.status_code == 400
    assert reply.json()["code"] == "validation_error"
    assert [e["field"] for e in reply.json()["errors"]] == [field]


def test_a_non_member_gets_404_for_the_organization_and_everything_under_it(team):
    outsider = as_user(UserFactory())
    for path in ["", "/members", "/invitations", "/keys", "/audit"]:
        reply = outsider.get(f"/api/v1/orgs/acme{path}")
        assert reply.status_code == 404, path
        assert reply.json()["code"] == "not_found"
    assert as_user(UserFactory()).get("/api/v1/orgs/nowhere").status_code == 404


@pytest.mark.parametrize(
    ("role", "method", "path", "payload"),
    [
        ("viewer", "post", "/keys", {"name": "k"}),
        ("viewer", "get", "/invitations", None),
        ("viewer", "post", "/invitations", {"email": "x@example.com", "role": "viewer"}),
        ("developer", "get", "/audit", None),
        ("developer", "post", "/invitations", {"email": "x@example.com", "role": "viewer"}),
        ("admin", "post", "/invitations", {"email": "x@example.com", "role": "owner"}),
    ],
)
def test_a_role_without_the_permission_gets_403(team, role, method, path, payload):
    org, users = team  # noqa: RUF059
    reply = getattr(as_user(users[role]), method)(
        f"/api/v1/orgs/acme{path}", payload, format="json"
    )
    assert reply.status_code == 403
    assert reply.json()["code"] == "permission_denied"


def test_viewers_read_the_key_list_and_members(team):
    org, users = team
    ApiKeyFactory(subscription=org.subscription)
    viewer = as_user(users["viewer"])
    assert viewer.get("/api/v1/orgs/acme/keys").json()["count"] == 1
    assert viewer.get("/api/v1/orgs/acme/members").json()["count"] == 4


def test_developers_revoke_the_keys_they_created_but_not_others(team):
    org, users = team  # noqa: RUF059
    dev = as_user(users["developer"])
    own = dev.post("/api/v1/orgs/acme/keys", {"name": "ci"}, format="json").json()
    assert own["created_by"] == "developer-user"
    others = as_user(users["admin"]).post("/api/v1/orgs/acme/keys", {}, format="json").json()
    assert dev.delete(f"/api/v1/orgs/acme/keys/{others['id']}").status_code == 403
    assert dev.patch(f"/api/v1/orgs/acme/keys/{others['id']}", {"name": "x"}).status_code == 403
    assert dev.delete(f"/api/v1/orgs/acme/keys/{own['id']}").status_code == 204
    assert ApiKey.objects.get(pk=own["id"]).revoked_at is not None


def test_admins_manage_every_key_and_rotate_them(team):
    org, users = team  # noqa: RUF059
    created = as_user(users["developer"]).post("/api/v1/orgs/acme/keys", {}, format="json").json()
    admin = as_user(users["admin"])
    rotated = admin.post(f"/api/v1/orgs/acme/keys/{created['id']}/rotate")
    assert rotated.status_code == 201
    assert rotated.json()["key"].startswith("mlk_")
    assert rotated.json()["created_by"] == "developer-user"  # the successor keeps its creator


def test_roles_change_and_unknown_roles_are_a_400(team):
    org, users = team  # noqa: RUF059
    owner = as_user(users["owner"])
    path = f"/api/v1/orgs/acme/members/{users['viewer'].pk}"
    assert owner.patch(path, {"role": "developer"}, format="json").json()["role"] == "developer"
    reply = owner.patch(path, {"role": "superuser"}, format="json")
    assert reply.status_code == 400
    assert reply.json()["errors"][0]["field"] == "role"


def test_admins_cannot_change_or_remove_owners_nor_make_one(team):
    org, users = team  # noqa: RUF059
    admin = as_user(users["admin"])
    owner_path = f"/api/v1/orgs/acme/members/{users['owner'].pk}"
    assert admin.patch(owner_path, {"role": "viewer"}, format="json").status_code == 403
    assert admin.delete(owner_path).status_code == 403
    dev_path = f"/api/v1/orgs/acme/members/{users['developer'].pk}"
    assert admin.patch(dev_path, {"role": "owner"}, format="json").status_code == 403
    assert admin.patch(dev_path, {"role": "viewer"}, format="json").status_code == 200


def test_the_last_owner_can_be_neither_demoted_nor_removed(team):
    org, users = team
    owner = as_user(users["owner"])
    path = f"/api/v1/orgs/acme/members/{users['owner'].pk}"
    for reply in (owner.patch(path, {"role": "admin"}, format="json"), owner.delete(path)):
        assert reply.status_code == 409
        assert reply.json()["code"] == "conflict"
    assert org.memberships.get(user=users["owner"]).role == "owner"


def test_with_a_second_owner_the_first_may_step_down(team):
    org, users = team
    owner = as_user(users["owner"])
    admin_path = f"/api/v1/orgs/acme/members/{users['admin'].pk}"
    assert owner.patch(admin_path, {"role": "owner"}, format="json").status_code == 200
    assert owner.delete(f"/api/v1/orgs/acme/members/{users['owner'].pk}").status_code == 204
    assert not org.memberships.filter(user=users["owner"]).exists()


def test_any_member_may_leave(team):
    org, users = team  # noqa: RUF059
    viewer = as_user(users["viewer"])
    assert viewer.delete(f"/api/v1/orgs/acme/members/{users['viewer'].pk}").status_code == 204
    assert viewer.get("/api/v1/orgs/acme").status_code == 404


def test_a_removed_members_jwt_and_session_lose_access_at_once_and_org_keys_keep_working(
    team, demo_models
):
    org, users = team  # noqa: RUF059
    dev_user = users["developer"]
    dev = as_user(dev_user)
    session = APIClient()
    session.force_login(dev_user)
    assert dev.get("/api/v1/orgs/acme/keys").status_code == 200  # warms the 1 s JWT cache
    assert session.get("/api/v1/orgs/acme/keys").status_code == 200
    key = dev.post("/api/v1/orgs/acme/keys", {"name": "ci"}, format="json").json()["key"]
    owner = as_user(users["owner"])
    assert owner.delete(f"/api/v1/orgs/acme/members/{dev_user.pk}").status_code == 204
    for client in (dev, session):
        for path in ["", "/keys", "/members", "/usage?start=2026-01-01&end=2026-01-01"]:
            assert client.get(f"/api/v1/orgs/acme{path}").status_code == 404, path
    caller = APIClient()
    caller.credentials(HTTP_X_API_KEY=key)
    reply = caller.post(
        "/api/v1/models/iris/predict", {"instances": [[5.1, 3.5, 1.4, 0.2]]}, format="json"
    )
    assert reply.status_code == 200, reply.content


def test_org_usage_is_for_members(team):
    org, users = team  # noqa: RUF059
    query = "start=2026-01-01&end=2026-01-02"
    reply = as_user(users["viewer"]).get(f"/api/v1/orgs/acme/usage?{query}")
    assert reply.status_code == 200
    assert reply.json()["count"] == 2
    assert as_user(UserFactory()).get(f"/api/v1/orgs/acme/usage?{query}").status_code == 404


def test_personal_account_endpoints_still_act_on_the_personal_organization(team):
    org, users = team
    owner = users["owner"]
    # The factory user has a personal organization once subscribed the old way.
    personal = Subscription.objects.create(user=owner, plan=org.subscription.plan, status="active")
    assert personal.organization.slug == owner.username
    created = as_user(owner).post("/api/v1/keys", {"name": "mine"}, format="json").json()
    assert ApiKey.objects.get(pk=created["id"]).subscription == personal
    assert as_user(owner).get("/api/v1/orgs").json()["count"] == 2
