"""The limits store going away: 503 service_unavailable, no quota used, and resumption.

PostgreSQL only (a SQLite file cannot become unreachable): new connections to the test
database are refused with `ALLOW_CONNECTIONS false`, the live server's request threads (which
open a connection per request) then cannot reach the quota, and must answer 503 rather than
admit. When connections are allowed again the next request succeeds without any restart.
"""

from __future__ import annotations

import pytest
import requests
from django.db import connection

from keys.models import QuotaCounter
from tests.factories import ApiKeyFactory, PlanFactory, SubscriptionFactory

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
]
IRIS = [5.1, 3.5, 1.4, 0.2]


def allow_connections(allowed: bool) -> None:
    """Flip ALLOW_CONNECTIONS of the test database from the `postgres` maintenance database."""
    import psycopg

    db = connection.settings_dict
    with psycopg.connect(
        dbname="postgres",
        user=db["USER"],
        password=db.get("PASSWORD") or None,
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        autocommit=True,
    ) as admin:
        admin.execute(
            f'ALTER DATABASE "{db["NAME"]}" ALLOW_CONNECTIONS {"true" if allowed else "false"}'
        )


def test_an_unreachable_database_is_503_for_the_quota_and_resumes_by_itself(
    postgres_url, live_demo_models, live_server
):
    plan = PlanFactory(quota=100, rate=1000.0, burst=1000)
    subscription = SubscriptionFactory(plan=plan)
    key = ApiKeyFactory(subscription=subscription)
    url = f"{live_server.url}/api/v1/models/iris/predict"
    headers = {"X-API-Key": key.plaintext}
    body = {"instances": [IRIS] * 2}
    assert requests.post(url, json=body, headers=headers, timeout=10).status_code == 200
    allow_connections(False)
    try:
        response = requests.post(url, json=body, headers=headers, timeout=30)
        assert response.status_code == 503
        assert response.json()["code"] == "service_unavailable"
        assert response.headers["Retry-After"]
    finally:
        allow_connections(True)
    response = requests.post(url, json={"instances": [IRIS] * 3}, headers=headers, timeout=10)
    assert response.status_code == 200
    assert QuotaCounter.objects.get(subscription=subscription).used == 5
