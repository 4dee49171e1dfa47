"""Shared fixtures. Services (PostgreSQL, Redis, RabbitMQ) are used when configured.

A test that needs a service it cannot reach is skipped with the reason, unless
MLAPI_REQUIRE_SERVICES=1 (as in the service run of .ci/run), where it fails instead.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

REQUIRE_SERVICES = os.environ.get("MLAPI_REQUIRE_SERVICES", "") in {"1", "true", "yes"}


def service_reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


def need_service(env_name: str, default_port: int) -> str:
    """Return the configured URL of a service, or skip (fail when services are required)."""
    url = os.environ.get(env_name, "")
    reason = None
    if not url:
        reason = f"{env_name} is not set"
    elif not service_reachable(url, default_port):
        reason = f"{env_name}={url} is not reachable"
    if reason:
        if REQUIRE_SERVICES:
            pytest.fail(f"required service missing: {reason}")
        pytest.skip(reason)
    return url


@pytest.fixture
def redis_url() -> str:
    return need_service("REDIS_URL", 6379)


@pytest.fixture
def postgres_url() -> str:
    url = need_service("DATABASE_URL", 5432)
    if not url.startswith(("postgres://", "postgresql://")):
        if REQUIRE_SERVICES:
            pytest.fail("required service missing: DATABASE_URL is not PostgreSQL")
        pytest.skip("DATABASE_URL is not PostgreSQL")
    return url


# --- models (predictions) ---
# The demo models are trained and registered (ONNX conversion included) once per session in
# a transaction that is rolled back: their artifacts stay in the data dir and the rows are
# recreated cheaply (two INSERTs per model) for every test that asks for `demo_models`.


@pytest.fixture(scope="session")
def demo_model_rows(django_db_setup, django_db_blocker) -> dict[str, dict]:
    """Field values of the registered demo models' MLModel and ModelVersion rows, by name."""
    from django.db import transaction
    from django.forms.models import model_to_dict

    from predictions.demo import bootstrap_demo_models

    class Rollback(Exception):
        pass

    rows: dict[str, dict] = {}
    with django_db_blocker.unblock():
        try:
            with transaction.atomic():
                for mv in bootstrap_demo_models():
                    model = model_to_dict(mv.model, exclude=["id"])
                    version = model_to_dict(mv, exclude=["id", "model"])
                    rows[mv.model.name] = {"model": model, "version": version}
                raise Rollback
        except Rollback:
            pass
    return rows


def install_demo_models(rows: dict[str, dict]) -> dict:
    """Create the demo rows in the current test database; returns {name: ModelVersion}."""
    from predictions.inference import clear_cache
    from predictions.models import MLModel, ModelVersion

    installed = {}
    for name, row in rows.items():
        model = MLModel.objects.create(**row["model"])
        installed[name] = ModelVersion.objects.create(model=model, **row["version"])
    clear_cache()
    return installed


@pytest.fixture
def demo_models(db, demo_model_rows) -> dict:
    """`iris` and `house-price` registered (default version "1", ONNX runtime)."""
    return install_demo_models(demo_model_rows)


@pytest.fixture
def live_demo_models(transactional_db, demo_model_rows) -> dict:
    """The demo models, committed, for tests that drive a live server."""
    return install_demo_models(demo_model_rows)


def make_subscriber_key(*, plan_name: str = "pred-test", **plan_fields) -> tuple:
    """An active subscription on a generous test plan and an API key: (subscription, key)."""
    from django.contrib.auth import get_user_model

    from keys.models import Plan
    from keys.services import create_api_key, subscribe

    fields = {
        "rate": 1000.0,
        "burst": 1000,
        "quota": 1_000_000,
        "quota_period": "month",
        "max_instances": 10_000,
        "max_job_rows": 100_000,
    } | plan_fields
    plan, _ = Plan.objects.get_or_create(name=plan_name, defaults=fields)
    count = get_user_model().objects.count()
    user = get_user_model().objects.create_user(
        username=f"pred-user-{count}", email=f"pred-{count}@example.com", password="x-Pass-12345"
    )
    subscription = subscribe(user=user, plan=plan, approved=True)
    _, key = create_api_key(subscription=subscription, name="test")
    return subscription, key


@pytest.fixture
def api_key(db) -> str:
    """A usable API key on a generous plan (covers every model, 10,000 instances)."""
    return make_subscriber_key()[1]


# --- subscribers and keys (keys) ---
# `make_subscriber(plan=...)` -> Subscription; `subscriber` (active, generous plan);
# `subscriber_key` -> (ApiKey, plaintext); `api_client` (X-API-Key) and `jwt_client` (Bearer),
# both DRF APIClients for `subscriber`. (`api_key` above returns just a plaintext key.)


@pytest.fixture(autouse=True)
def _fresh_limit_state():
    """Per-process key cache, reservations and Redis limits (buckets, quota pools) start empty.

    SQLite reuses rolled-back ids, and every run's test database starts its ids at 1 again.
    """
    from keys import keycache, limits

    keycache.clear()
    limits.forget_reservations()
    url = os.environ.get("REDIS_URL", "")
    if url and service_reachable(url, 6379):
        import redis

        client = redis.Redis.from_url(url)
        try:
            for pattern in ("mlapi:bucket:*", "mlapi:pool:*", "mlapi:lease:*"):
                keys = list(client.scan_iter(pattern, count=1000))
                if keys:
                    client.delete(*keys)
        finally:
            client.close()
    yield
    keycache.clear()
    limits.forget_reservations()


@pytest.fixture
def make_subscriber(db):
    """`make_subscriber(plan=None|"free"|Plan, status="active", **plan_fields)`."""
    from tests.factories import PlanFactory, SubscriptionFactory, seeded_plan

    def make(plan=None, status: str = "active", **plan_fields):
        if isinstance(plan, str):
            plan = seeded_plan(plan) if not plan_fields else PlanFactory(name=plan, **plan_fields)
        elif plan is None:
            plan = PlanFactory(**plan_fields)
        return SubscriptionFactory(plan=plan, status=status)

    return make


@pytest.fixture
def subscriber(make_subscriber):
    """An active subscription on a generous plan (all models)."""
    return make_subscriber()


@pytest.fixture
def subscriber_key(subscriber) -> tuple:
    """(ApiKey, plaintext) for `subscriber`."""
    from tests.factories import ApiKeyFactory

    key = ApiKeyFactory(subscription=subscriber)
    return key, key.plaintext


@pytest.fixture
def api_client(subscriber_key):
    """An APIClient sending `subscriber`'s API key in X-API-Key."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=subscriber_key[1])
    return client


@pytest.fixture
def jwt_client(subscriber):
    """An APIClient with a fresh access token for `subscriber` in Authorization: Bearer."""
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    client = APIClient()
    access = RefreshToken.for_user(subscriber.user).access_token
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client
