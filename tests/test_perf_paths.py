"""The fast data-plane path keeps its behaviour: lean middleware only where no browser goes."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db

IRIS_URL = "/api/v1/models/iris/predict"
ONE_ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def test_data_plane_routes_skip_session_csrf_and_page_headers(client, demo_models, api_key):
    response = client.post(
        IRIS_URL, ONE_ROW, content_type="application/json", HTTP_X_API_KEY=api_key
    )
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware still runs
    assert "RateLimit" in response
    assert "Content-Security-Policy" not in response
    assert "X-Frame-Options" not in response
    assert not response.cookies


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v2/models/iris/infer", 401, "not_authenticated"),
        ("/v1/models/iris:predict", 401, "not_authenticated"),
        ("/api/v1/models/iris/predict", 401, "not_authenticated"),
    ],
)
def test_lean_routes_still_answer_contract_errors(client, demo_models, path, status, code):
    response = client.post(path, ONE_ROW, content_type="application/json")
    assert response.status_code == status
    assert response.json()["code"] == code


def test_portal_pages_keep_the_full_middleware_chain(client):
    response = client.get("/portal/login/")
    assert "Content-Security-Policy" in response
    assert response["X-Frame-Options"] == "DENY"
    assert "csrftoken" in response.cookies


def test_warm_predict_reads_nothing_and_writes_only_limits_and_usage(
    client, demo_models, api_key, settings
):
    """Key, plan and model come from per-process caches; the database sees only writes.

    With Redis the limits are the lease store's: once leases have grown (three quick requests:
    1, 2, then 4 units leased ahead), a predict is served from the pool without the database.
    The database store writes its bucket and counter, or nothing (a reservation serves it).
    """
    for _ in range(3):
        client.post(IRIS_URL, ONE_ROW, content_type="application/json", HTTP_X_API_KEY=api_key)
    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            IRIS_URL, ONE_ROW, content_type="application/json", HTTP_X_API_KEY=api_key
        )
    assert response.status_code == 200
    statements = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    assert "SELECT" not in statements
    limits = [q["sql"] for q in captured.captured_queries if "keys_" in q["sql"]]
    if settings.REDIS_URL:  # bucket and pool are in Redis
        assert limits == []
        return
    # The database store: nothing (served from this process's reservation) or one transaction
    # of writes to the bucket and the counter: take, a used-up reservation no longer out, the
    # request's units, the next reservation's.
    assert len(limits) <= 4
    assert all(q.split()[0].upper() in {"INSERT", "UPDATE"} for q in limits)
    assert all("keys_ratebucket" in q or "keys_quotacounter" in q for q in limits)


@pytest.mark.parametrize(
    "accept", [None, "*/*", "application/json", "application/*", "text/html", "*/*; q=0.5"]
)
@pytest.mark.parametrize("query", ["", "format=json", "format=api"])
def test_fast_negotiation_answers_exactly_what_drf_answers(accept, query):
    from rest_framework.negotiation import DefaultContentNegotiation
    from rest_framework.renderers import JSONRenderer
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from keys.views import CommonAcceptNegotiation

    extra = {"HTTP_ACCEPT": accept} if accept is not None else {}
    request = Request(APIRequestFactory().get(f"/api/v1/models?{query}", **extra))
    outcomes = []
    for negotiation in (CommonAcceptNegotiation(), DefaultContentNegotiation()):
        try:
            renderer, media_type = negotiation.select_renderer(request, [JSONRenderer()])
            outcomes.append((type(renderer), media_type))
        except Exception as exc:  # NotAcceptable, or DRF's 404 for an unknown format
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]


def test_a_data_plane_request_accepting_only_html_is_406(client, demo_models, api_key):
    response = client.get("/api/v1/models", HTTP_X_API_KEY=api_key, HTTP_ACCEPT="text/html")
    assert response.status_code == 406
    assert response.json()["code"] == "not_acceptable"


@pytest.mark.django_db(transaction=True)
def test_web_workers_checkpoint_the_wal_in_the_background_not_in_requests():
    from django.db.backends.signals import connection_created

    from mlapi import sqlite_checkpoint

    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    connection.ensure_connection()
    stop = sqlite_checkpoint.start_background_checkpoints()
    try:
        assert stop is not None
        with connection.cursor() as cursor:
            assert cursor.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
            assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        if stop is not None:
            stop.set()
        connection_created.disconnect(dispatch_uid="mlapi-no-autocheckpoint")
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint=1000")
