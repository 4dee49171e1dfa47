"""`/api/v1/usage` and `/api/v1/me` agree on the open period's quota at every moment.

The usage rollups trail the requests by the buffered writer's flush; the open period's
`quota_used`/`quota_remaining` come from the live counter, so right after a prediction both
endpoints show it spent (here with a writer that flushes only every 30 s).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from tests.factories import TEST_PASSWORD, ApiKeyFactory, PlanFactory, SubscriptionFactory
from tests.servers import GunicornServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

IRIS = [5.1, 3.5, 1.4, 0.2]


def test_usage_quota_for_the_open_period_matches_me_right_after_each_prediction(
    live_demo_models,
):
    plan = PlanFactory(rate=1000.0, burst=1000, quota=50, quota_period="day")
    subscription = SubscriptionFactory(plan=plan)
    key = ApiKeyFactory(subscription=subscription).plaintext
    today = datetime.now(UTC).date().isoformat()
    env = {"MLAPI_USAGE_MODE": "buffered", "MLAPI_USAGE_FLUSH_INTERVAL_S": "30"}
    with GunicornServer(env=env, workers=2) as server:
        access = requests.post(
            f"{server.url}/api/v1/auth/token",
            json={"username": subscription.user.username, "password": TEST_PASSWORD},
            timeout=10,
        ).json()["access"]
        bearer = {"Authorization": f"Bearer {access}"}
        spent = 0
        for n in (1, 3, 5, 2):
            response = requests.post(
                f"{server.url}/api/v1/models/iris/predict",
                json={"instances": [IRIS] * n},
                headers={"X-API-Key": key},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            spent += n
            quota = requests.get(f"{server.url}/api/v1/me", headers=bearer, timeout=10).json()[
                "subscription"
            ]["quota"]
            (day,) = requests.get(
                f"{server.url}/api/v1/usage",
                params={"start": today, "end": today},
                headers=bearer,
                timeout=10,
            ).json()["results"]
            assert quota["used"] == spent
            assert (day["quota_used"], day["quota_remaining"]) == (spent, 50 - spent)
            assert quota["remaining"] == day["quota_remaining"]
