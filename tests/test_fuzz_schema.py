"""Schema fuzzing: schemathesis drives every operation of /api/schema/ on a live gunicorn.

Valid and invalid requests are generated from the OpenAPI document (derandomized, so every run
sends the same ones) and sent with a valid API key or a valid JWT. Every response must not be a
server error, and its status code, content type and body must be ones the document declares.
All failures are collected and reported together (one line per operation and check).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter

import pytest
import requests
import schemathesis
import schemathesis.specs.openapi.checks
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

from tests.factories import ApiKeyFactory, PlanFactory, SubscriptionFactory
from tests.servers import GunicornServer

# Examples per operation and generation mode (hypothesis stops early where an operation has
# fewer distinct inputs). The default keeps `make test` quick; MLAPI_FUZZ_EXAMPLES=200 sends
# ~22,800 cases over 57 operations (.ci/run does, on SQLite and on PostgreSQL).
EXAMPLES = int(os.environ.get("MLAPI_FUZZ_EXAMPLES") or 40)
MIN_REQUESTS = EXAMPLES * 45
# MLAPI_FUZZ_ONLY="/api/v1/orgs" fuzzes only the operations whose path contains it (to chase one
# failure); the request-count floor then does not apply.
ONLY = os.environ.get("MLAPI_FUZZ_ONLY", "")
# Every check schemathesis has (the stateful ones pass vacuously on single calls).
CHECKS = REGISTERED_CHECKS.get_all()
# positive_data_acceptance also takes a 400 `validation_error` naming the field, for the rules
# OpenAPI cannot state: start after end, expires_at in the past, a job's file or instances,
# NUL characters, values outside a model's input schema, usage days before 1970 or in 9999. Any
# other 400 to schema-valid data fails (see `refused_positive`). negative_data_rejection also
# counts the documented refusals of an oversized request as rejections: 413, 414 (a generated
# query longer than the server's request line) and 431. Every other check runs with
# schemathesis' defaults.
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "3xx", 400, 401, 403, 404, 409, 429]},
        "negative_data_rejection": {
            "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 414, 415, 422, 428,
                                  429, 431, "5xx"]},
    }}
)  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    # ~2 min at 40 and ~7 at 200 (niced beside other work); room for a loaded box.
    pytest.mark.timeout(max(480, EXAMPLES * 15)),
]
MANAGEMENT_PREFIXES = ("/api/v1/keys", "/api/v1/me", "/api/v1/usage")


def huge_subscription():
    """A subscription whose limits the fuzzer never reaches (429s would hide everything)."""
    plan = PlanFactory(
        rate=1_000_000.0, burst=1_000_000, quota=10**12, max_instances=10_000, max_job_rows=10**6
    )
    return SubscriptionFactory(plan=plan)


@pytest.fixture
def server(live_demo_models):
    # The embedded broker in the data dir: submitted fuzz jobs must not reach another
    # suite's worker through a shared RabbitMQ (no worker runs here; they just queue).
    with GunicornServer(
        env={"CELERY_BROKER_URL": "", "MLAPI_USAGE_FLUSH_INTERVAL_S": "0.2"}, workers=2
    ) as live:
        yield live


def credentials() -> dict[str, dict[str, str]]:
    """An API key for one subscriber and a JWT for another (so fuzzed deletes of ids hit
    someone else's objects, never the key the fuzzer itself uses), by name."""
    key_owner = huge_subscription()
    api_key = ApiKeyFactory(subscription=key_owner, name="fuzzer").plaintext
    jwt_owner = huge_subscription()
    for n in range(3):
        ApiKeyFactory(subscription=jwt_owner, name=f"target {n}")
    access = str(RefreshToken.for_user(jwt_owner.user).access_token)
    return {
        "key": {"X-API-Key": api_key},
        "jwt": {"Authorization": f"Bearer {access}"},
        "generated": {},  # only the case's own (generated) credentials
    }


def summarize(exc: BaseException) -> str:
    """First line of each failure schemathesis reports (a FailureGroup holds several)."""
    failures = getattr(exc, "exceptions", None) or [exc]
    return " | ".join(f"{type(f).__name__}: " + " ".join(str(f).split())[:1200] for f in failures)


def refused_positive(response: requests.Response) -> bool:
    """A 400 to schema-valid data that is not a field-level validation error."""
    if response.status_code != 400:
        return False
    body = response.json()
    return body.get("code") != "validation_error" or not body.get("errors")


def test_every_operation_conforms_to_the_openapi_schema_under_fuzzing(server):
    creds = credentials()
    document = requests.get(f"{server.url}/api/schema/?format=json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document, config=CONFIG)
    alternate = itertools.cycle(["key", "jwt"])
    sent: Counter[str] = Counter()
    failures: dict[str, str] = {}
    session = requests.Session()

    def exercise(operation, mode: GenerationMode) -> None:
        label = f"{operation.method.upper()} {operation.path}"

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case) -> None:
            who = "jwt" if operation.path.startswith(MANAGEMENT_PREFIXES) else next(alternate)
            # A negative case whose violation is a credential (X-API-Key, Authorization, the
            # session cookie: the security schemes are parameters to schemathesis) is sent as
            # generated, so the server sees the broken credential, not ours in its place.
            if schema.is_security_param_negated(case):
                who = "generated"
            sent[label] += 1
            response = None
            try:
                response = case.call(
                    base_url=server.url, session=session, headers=creds[who], timeout=30
                )
                case.validate_response(response, checks=CHECKS, headers=creds[who])
                if mode is GenerationMode.POSITIVE:
                    assert not refused_positive(response), "schema-valid data refused"
            except (Exception, BaseExceptionGroup) as exc:  # collected: reported together
                seen = (
                    f" <- {case.method} {case.formatted_path} query={case.query} "
                    + (f"headers={case.headers} " if case.headers else "")
                    + (
                        f"body={str(case.body)[:200]} "
                        f"-> {response.status_code} {response.text[:300]}"
                        if response is not None
                        else ""
                    )
                )
                failures.setdefault(f"{label} [{mode.value}, {who}]", summarize(exc) + seen)

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing can be invalid (no inputs)

    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [o for o in operations if ONLY in o.path]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            exercise(operation, mode)
    total = sum(sent.values())
    print(
        f"\nschemathesis: {len(operations)} operations, {len(CHECKS)} checks, {total} requests, "
        f"{len(failures)} failing, {time.monotonic() - started:.0f} s"
    )
    assert not failures, "\n".join(f"{k}: {v}" for k, v in sorted(failures.items())) + (
        "\n--- server log ---\n" + server.log_text()[-4000:]
    )
    assert set(sent) == {f"{o.method.upper()} {o.path}" for o in operations}
    assert ONLY or total >= MIN_REQUESTS
