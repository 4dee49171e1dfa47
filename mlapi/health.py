"""Liveness, readiness and metrics endpoints (public, no auth, never cached)."""

from __future__ import annotations

import time

import orjson
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from mlapi.metrics import render_latest


def _json(body: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up and answering."""
    return _json({"status": "ok"})


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def check_cache() -> str:
    key = "readyz:probe"
    cache.set(key, "1", 10)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return what was written")
    return "ok"


def check_broker() -> str:
    from mlapi.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


def check_models() -> str:
    from predictions.inference import models_ready

    ready, detail = models_ready()
    if not ready:
        raise RuntimeError(detail)
    return "ok"


CHECKS = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
    "models": check_models,
}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """200 when every component answers, else 503; each component's state either way."""
    components: dict[str, dict] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            state = {"status": check()}
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            state = {"status": "unavailable", "error": exc.__class__.__name__}
            if settings.DEBUG:
                state["detail"] = str(exc)[:200]
        state["ms"] = round((time.perf_counter() - started) * 1000, 2)
        components[name] = state
    ready = all(c["status"] == "ok" for c in components.values())
    return _json({"ready": ready, "components": components}, status=200 if ready else 503)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition text."""
    body, content_type = render_latest()
    return HttpResponse(body, content_type=content_type)
