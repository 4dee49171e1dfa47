"""Hardening: production settings pass `check --deploy`, security headers are sent, Argon2
hashes passwords, secrets never rest in the database or logs, the admin is staff-only and
model upload is staff-only and hash-verified."""

from __future__ import annotations

import logging
import re
import secrets
import subprocess
import sys

import pytest
import requests
from django.apps import apps
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import TEST_PASSWORD, UserFactory
from tests.servers import BASE_DIR, GunicornServer

KEY_PATTERN = re.compile(r"mlk_[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def production_env(data_dir) -> dict[str, str]:
    """What a deployment sets (compose.yaml): debug off, a real secret, named hosts."""
    return {
        "DJANGO_DEBUG": "0",
        "MLAPI_TESTING": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,api.example.com",
        "MLAPI_DATA_DIR": str(data_dir),
    }


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`python manage.py ...` in a fresh interpreter (not under pytest, so not TESTING)."""
    import os

    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "services",
    [
        {"REDIS_URL": "", "DATABASE_URL": "", "CELERY_BROKER_URL": ""},  # embedded defaults
        {  # the deployed layout (compose.yaml); check --deploy does not connect to them
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "DATABASE_URL": "postgres://mlapi@127.0.0.1:5432/mlapi",
            "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
        },
    ],
    ids=["embedded", "postgres-redis-rabbitmq"],
)
def test_check_deploy_is_clean_with_production_settings(tmp_path, services):
    env = production_env(tmp_path) | services
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_hashes_passwords_with_argon2(tmp_path):
    code = "from django.contrib.auth.hashers import get_hasher; print(get_hasher().algorithm)"
    result = manage(production_env(tmp_path), "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "argon2"


@pytest.fixture
def production_server(transactional_db, tmp_path):
    """gunicorn with production settings (static files collected, as in the image)."""
    env = production_env(tmp_path)
    collected = manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    assert collected.returncode == 0, collected.stderr
    with GunicornServer(env=env) as server:
        yield server


@pytest.mark.slow
def test_production_sends_security_headers_and_hsts_only_over_https(production_server):
    url = production_server.url
    plain = requests.get(f"{url}/portal/login/", allow_redirects=False, timeout=30)
    assert plain.status_code == 301
    assert plain.headers["Location"].startswith("https://")
    https = {"X-Forwarded-Proto": "https"}  # as set by the TLS-terminating proxy
    portal = requests.get(f"{url}/portal/login/", headers=https, timeout=30)
    assert portal.status_code == 200
    assert portal.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert portal.headers["X-Content-Type-Options"] == "nosniff"
    assert portal.headers["Referrer-Policy"] == "same-origin"
    assert portal.headers["X-Frame-Options"] == "DENY"
    csp = portal.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-eval'" not in csp
    assert "Secure" in portal.headers["Set-Cookie"] and "csrftoken" in portal.headers["Set-Cookie"]
    api = requests.get(f"{url}/api/v1/plans", headers=https, timeout=30)
    assert api.status_code == 200
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert api.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Server" not in api.headers or "gunicorn/" not in api.headers["Server"]


def dump_database() -> str:
    """Every column of every row of every table, as text."""
    lines = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            lines += [f"{table}: {row!r}" for row in cursor.fetchall()]
    return "\n".join(lines)


def test_no_password_key_or_refresh_token_rests_in_the_database_or_logs(
    demo_models, caplog, settings
):
    settings.MLAPI_USAGE_MODE = "sync"
    caplog.set_level(logging.DEBUG)
    password = "Unique-" + secrets.token_urlsafe(12)
    api = APIClient()
    signup = {"username": "hardened", "email": "h@example.com", "password": password}
    assert api.post("/api/v1/auth/signup", signup, format="json").status_code == 201
    tokens = api.post("/api/v1/auth/token", signup, format="json").json()
    refreshed = api.post(
        "/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json"
    )
    assert refreshed.status_code == 200
    jwt = APIClient()
    jwt.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    created = jwt.post("/api/v1/keys", {"name": "k"}, format="json").json()
    rotated = jwt.post(f"/api/v1/keys/{created['id']}/rotate").json()
    issued = [created["key"], rotated["key"]]
    portal = Client()
    assert portal.login(username="hardened", password=password)
    page = portal.post("/portal/keys/", {"name": "from the portal"})
    issued += sorted(set(KEY_PATTERN.findall(page.content.decode())))  # shown + copy button
    assert len(issued) == 3
    for key in issued:
        response = api.post("/api/v1/models/iris/predict", IRIS, format="json", HTTP_X_API_KEY=key)
        assert response.status_code == 200, response.content
        api.post("/api/v1/models/nope/predict", IRIS, format="json", HTTP_X_API_KEY=key + "x")
    logout = {"refresh": refreshed.json()["refresh"]}
    assert api.post("/api/v1/auth/logout", logout, format="json").status_code == 204
    secrets_issued = {
        "password": password,
        "refresh token": tokens["refresh"],
        "rotated refresh token": refreshed.json()["refresh"],
        **{f"key {n}": key for n, key in enumerate(issued)},
        **{f"key secret {n}": key.split(".", 1)[1] for n, key in enumerate(issued)},
    }
    at_rest = dump_database() + "\n" + caplog.text
    assert "hardened" in at_rest  # the dump did see this user's rows
    leaked = [name for name, value in secrets_issued.items() if value in at_rest]
    assert not leaked


@pytest.mark.django_db
def test_admin_is_for_staff_only():
    client = Client()
    assert client.get("/admin/").status_code == 302  # to the admin login
    user = UserFactory()
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client.get("/admin/reports/usage/").status_code in {302, 403}
    user.is_staff = user.is_superuser = True
    user.save()
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_admin_login_refuses_a_non_staff_password():
    user = UserFactory()
    response = Client().post(
        "/admin/login/", {"username": user.username, "password": TEST_PASSWORD}
    )
    assert response.status_code == 200  # the form again, with an error; no session
    assert "_auth_user_id" not in Client().session


@pytest.fixture
def login_counters():
    """The shared cache that holds failed-login counters, empty before and after the test."""
    from django.core.cache import cache

    cache.clear()
    yield cache
    cache.clear()


def staff_login(client: Client, username: str, password: str, **extra):
    return client.post("/admin/login/", {"username": username, "password": password}, **extra)


@pytest.mark.django_db
def test_admin_login_is_refused_after_10_failures_per_ip_and_username(login_counters):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    for _ in range(10):
        assert staff_login(client, staff.username, "wrong-password").status_code == 200
    blocked = staff_login(client, staff.username, TEST_PASSWORD)
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) == 15 * 60
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # still signed out
    # The same operator from another address gets in (the limit is per IP and username).
    other_ip = staff_login(client, staff.username, TEST_PASSWORD, REMOTE_ADDR="10.1.2.3")
    assert other_ip.status_code == 302 and client.get("/admin/").status_code == 200
    # Once the 15 minutes have passed (the counter expired), the first address works again.
    login_counters.clear()
    client.logout()
    assert staff_login(client, staff.username, TEST_PASSWORD).status_code == 302


@pytest.mark.django_db
def test_failed_admin_logins_count_towards_the_portal_and_token_limits(login_counters):
    staff = UserFactory(is_staff=True)
    for _ in range(10):
        staff_login(Client(), staff.username, "wrong-password")
    credentials = {"username": staff.username, "password": TEST_PASSWORD}
    portal = Client().post("/portal/login/", credentials)
    assert portal.status_code == 429
    token = APIClient().post("/api/v1/auth/token", credentials, format="json")
    assert token.status_code == 429 and token.json()["code"] == "rate_limited"


def test_every_model_registered_in_the_admin_requires_staff(db):
    from django.contrib import admin

    user = UserFactory()
    client = Client()
    client.force_login(user)
    for model in admin.site._registry:
        meta = model._meta
        response = client.get(f"/admin/{meta.app_label}/{meta.model_name}/")
        assert response.status_code == 302, f"{meta.label} is open to non-staff"
    assert apps.get_model("keys", "ApiKey") in admin.site._registry


@pytest.mark.django_db
def test_model_upload_is_refused_to_subscribers_and_to_staff_without_the_permission():
    from django.core.files.uploadedfile import SimpleUploadedFile

    from predictions.models import ModelVersion

    user = UserFactory()
    client = Client()
    client.force_login(user)
    form = {"model_name": "sneaky", "expected_sha256": "0" * 64, "description": ""}
    upload = SimpleUploadedFile("m.skops", b"PK\x03\x04 not a model")
    response = client.post("/admin/predictions/modelversion/add/", form | {"artifact_file": upload})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    user.is_staff = True  # staff, but not granted predictions.add_modelversion
    user.save()
    upload.seek(0)
    response = client.post("/admin/predictions/modelversion/add/", form | {"artifact_file": upload})
    assert response.status_code == 403
    assert not ModelVersion.objects.filter(model__name="sneaky").exists()


def test_the_container_files_run_the_commands_make_run_and_ci_use():
    import yaml

    from mlapi.serve import ROLES

    makefile = (BASE_DIR / "Makefile").read_text()
    setup_steps = re.findall(r"manage\.py (\w+)", makefile.split("\nsetup:")[1].split("\nrun:")[0])
    compose = yaml.safe_load((BASE_DIR / "compose.yaml").read_text())
    migrate = " ".join(compose["services"]["migrate"]["entrypoint"])
    assert re.findall(r"manage\.py (\w+)", migrate) == setup_steps
    assert {compose["services"][role]["command"][0] for role in ROLES} == set(ROLES)
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "mlapi.serve"]' in dockerfile
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
    assert compose["x-app"]["environment"]["DJANGO_DEBUG"] == "0"
