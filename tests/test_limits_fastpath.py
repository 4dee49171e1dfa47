"""SQLite's direct admit path (autocommit, outside atomic) keeps every rule of the limits.

`keys.limits.admit` sends its two upserts straight to sqlite3 when no atomic block is open,
which is how a web request runs. The unit tests of test_limits.py run inside a test
transaction (Django's path), so these repeat the rules with committed data.
"""

from __future__ import annotations

import pytest
from django.db import connection

from keys import limits, services
from keys.models import QuotaCounter, RateBucket
from keys.principal import Principal

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("the direct path is SQLite's")


def principal_for(make_subscriber, **plan_fields) -> Principal:
    return Principal.for_subscription(make_subscriber(**plan_fields))


def used(principal: Principal) -> int:
    return sum(
        QuotaCounter.objects.filter(subscription_id=principal.subscription_id).values_list(
            "used", flat=True
        )
    )


@pytest.fixture(autouse=True)
def _database_store(settings):
    settings.MLAPI_LIMITS_STORE = "database"


def test_direct_path_is_taken_in_autocommit_and_commits(make_subscriber):
    principal = principal_for(make_subscriber, quota=10)
    assert connection.get_autocommit()
    state = limits.admit(principal=principal, units=3)
    assert (state.used, state.remaining) == (3, 7)
    assert not connection.connection.in_transaction  # committed, nothing left open
    assert used(principal) == 3


def test_direct_path_refuses_a_request_over_the_remaining_quota_whole(make_subscriber):
    principal = principal_for(make_subscriber, quota=10)
    limits.admit(principal=principal, units=6)
    with pytest.raises(limits.QuotaExceeded) as refused:
        limits.admit(principal=principal, units=5)
    assert refused.value.state.remaining == 4
    assert used(principal) == 6
    assert not connection.connection.in_transaction


@pytest.mark.parametrize("units", [11, 100_000])
def test_direct_path_refuses_more_than_the_whole_quota_and_creates_no_counter(
    make_subscriber, units
):
    principal = principal_for(make_subscriber, quota=10)
    with pytest.raises(limits.QuotaExceeded):
        limits.admit(principal=principal, units=units)
    assert used(principal) == 0


def test_direct_path_honours_an_extension_beyond_the_plan_quota(make_subscriber):
    subscription = make_subscriber(quota=10)
    services.grant_quota_extension(subscription=subscription, units=5)
    principal = Principal.for_subscription(subscription)
    state = limits.admit(principal=principal, units=15)
    assert (state.quota, state.used) == (15, 15)


def test_direct_path_empty_bucket_is_rate_limited_and_uses_no_quota(make_subscriber):
    principal = principal_for(make_subscriber, quota=100, rate=0.001, burst=2)
    limits.admit(principal=principal, units=1)
    limits.admit(principal=principal, units=1)
    with pytest.raises(limits.RateLimited) as refused:
        limits.admit(principal=principal, units=1)
    assert refused.value.state.tokens < 1
    assert used(principal) == 2
    assert RateBucket.objects.get(subscription_id=principal.subscription_id).tokens < 1
