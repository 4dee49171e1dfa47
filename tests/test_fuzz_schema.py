"""Schema fuzzing: schemathesis drives every operation of /api/schema/ on a live gunicorn.

Valid and invalid requests are generated from the OpenAPI document (derandomized, so every run
sends the same ones) and sent with a valid API key or a valid JWT. Every response must not be a
server error, and its status code, content type and body must be ones the document declares.
All failures are collected and reported together (one line per operation and check).
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import ApiKeyFactory, PlanFactory, SubscriptionFactory
from tests.servers import GunicornServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(480),  # ~2-3 min alone; room for a loaded CI machine
]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Examples per operation and generation mode: 28 operations x 2 modes x 40 examples.
EXAMPLES = 40
MIN_REQUESTS = 2000
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
    someone else's objects, never the key the fuzzer itself uses)."""
    key_owner = huge_subscription()
    api_key = ApiKeyFactory(subscription=key_owner, name="fuzzer").plaintext
    jwt_owner = huge_subscription()
    for n in range(3):
        ApiKeyFactory(subscription=jwt_owner, name=f"target {n}")
    access = str(RefreshToken.for_user(jwt_owner.user).access_token)
    return {"key": {"X-API-Key": api_key}, "jwt": {"Authorization": f"Bearer {access}"}}


def summarize(exc: BaseException) -> str:
    """First line of each failure schemathesis reports (a FailureGroup holds several)."""
    failures = getattr(exc, "exceptions", None) or [exc]
    return " | ".join(f"{type(f).__name__}: " + " ".join(str(f).split())[:400] for f in failures)


def test_every_operation_conforms_to_the_openapi_schema_under_fuzzing(server):
    creds = credentials()
    document = requests.get(f"{server.url}/api/schema/?format=json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
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
            sent[label] += 1
            try:
                case.call_and_validate(
                    base_url=server.url,
                    session=session,
                    headers=creds[who],
                    checks=CHECKS,
                    timeout=30,
                )
            except (Exception, BaseExceptionGroup) as exc:  # collected: reported together
                failures.setdefault(f"{label} [{mode.value}, {who}]", summarize(exc))

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing can be invalid (no inputs)

    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            exercise(operation, mode)
    total = sum(sent.values())
    print(
        f"\nschemathesis: {len(operations)} operations, {total} requests, {len(failures)} failing"
    )
    assert not failures, "\n".join(f"{k}: {v}" for k, v in sorted(failures.items())) + (
        "\n--- server log ---\n" + server.log_text()[-4000:]
    )
    assert set(sent) == {f"{o.method.upper()} {o.path}" for o in operations}
    assert total >= MIN_REQUESTS
