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
