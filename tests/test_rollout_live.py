"""Rollouts on a live gunicorn server (two workers): canary share and stickiness, shadow
agreement in /metrics, deprecation headers and retirement."""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from keys.services import create_api_key
from predictions import rollout
from predictions.demo import IRIS_SPECIES
from predictions.models import MLModel, ModelVersion
from predictions.operations import set_rollout, update_version
from predictions.registry import register_model_version
from tests.conftest import make_subscriber_key
from tests.servers import GunicornServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5], [5.9, 3.0, 4.2, 1.5]]


def add_version(label: str, depth: int) -> None:
    data = load_iris()
    tree = DecisionTreeClassifier(max_depth=depth, random_state=0)
    register_model_version(
        name="iris", estimator=tree.fit(data.data, IRIS_SPECIES[data.target]), version=label
    )


@pytest.fixture
def server(live_demo_models):
    add_version("2", depth=3)
    add_version("3", depth=1)
    with GunicornServer(env={"MLAPI_USAGE_MODE": "sync"}, workers=2) as live:
        yield live


def keys(count: int) -> list[tuple[int, str]]:
    subscription, _ = make_subscriber_key(
        plan_name="rollout-live", rate=100_000.0, burst=100_000, quota=10_000_000
    )
    made = [create_api_key(subscription=subscription) for _ in range(count)]
    return [(api_key.pk, plaintext) for api_key, plaintext in made]


def predict(session, url: str, key: str, version: str | None = None) -> requests.Response:
    path = f"/versions/{version}/predict" if version else "/predict"
    return session.post(
        f"{url}/api/v1/models/iris{path}", json={"instances": ROWS}, headers={"X-API-Key": key}
    )


def versions_answering(url: str, calls: list[tuple[int, str]]) -> list[str]:
    """The `version` of each unpinned prediction, four connections at a time, in call order."""
    local = threading.local()

    def one(call: tuple[int, str]) -> str:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        reply = predict(local.session, url, call[1])
        assert reply.status_code == 200, reply.content
        return reply.json()["version"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, calls))


def test_a_90_10_canary_is_sticky_per_key_and_takes_its_share(server):
    set_rollout(
        model=MLModel.objects.get(name="iris"),
        spec={"default": "1", "canary": {"version": "2", "percent": 10}},
    )
    few = keys(20)
    seen: dict[int, set[str]] = defaultdict(set)
    answers = defaultdict(int)
    calls = [few[i % 20] for i in range(2000)]
    for (key_id, _), version in zip(calls, versions_answering(server.url, calls), strict=True):
        seen[key_id].add(version)
        answers[version] += 1
    assert all(len(versions) == 1 for versions in seen.values()), seen
    # 20 sticky callers can only split in 5 % steps: the share is the hash's, exactly.
    expected = sum(rollout.bucket(f"key:{k}", "iris", "2") < 1000 for k, _ in few)
    assert answers["2"] == expected * 100
    many = keys(2000)  # one prediction each: the share of callers is 10 % +- 3 %
    canary = sum(version == "2" for version in versions_answering(server.url, many))
    assert 140 <= canary <= 260, canary


def shadow_counts(url: str) -> dict[str, float]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    found = {}
    for outcome in ("agree", "disagree"):
        pattern = (
            r'mlapi_shadow_instances_total\{[^}]*model="iris"[^}]*outcome="' + outcome + r'"[^}]*'
            r'shadow_version="3"[^}]*version="1"[^}]*\} ([0-9.e+]+)'
        )
        match = re.search(pattern, text)
        found[outcome] = float(match.group(1)) if match else 0.0
    return found


def test_shadow_agreement_shows_in_metrics_and_the_caller_sees_only_the_answer(server):
    set_rollout(
        model=MLModel.objects.get(name="iris"),
        spec={"default": "1", "shadow": {"version": "3", "percent": 100}},
    )
    (_, key), = keys(1)  # fmt: skip
    with requests.Session() as session:
        replies = [predict(session, server.url, key) for _ in range(30)]
    assert {r.json()["version"] for r in replies} == {"1"}
    assert all(set(r.json()) == {"model", "version", "predictions"} for r in replies)
    deadline = timezone.now() + timedelta(seconds=20)
    counts = shadow_counts(server.url)
    while counts["agree"] + counts["disagree"] < 90 and timezone.now() < deadline:
        counts = shadow_counts(server.url)
    assert counts["agree"] + counts["disagree"] == 90, (counts, server.log_text()[-2000:])
    # a depth-1 tree cannot tell versicolor from virginica: it agrees on setosa, not on all
    assert counts["agree"] >= 30 and counts["disagree"] >= 1


def test_deprecation_headers_then_404_after_sunset(server):
    (_, key), = keys(1)  # fmt: skip
    mv = ModelVersion.objects.select_related("model").get(model__name="iris", version="2")
    now = timezone.now()
    update_version(
        model_version=mv,
        changes={
            "deprecated_at": (now - timedelta(days=1)).isoformat(),
            "sunset_at": (now + timedelta(seconds=4)).isoformat(),
        },
    )
    with requests.Session() as session:
        reply = predict(session, server.url, key, "2")
        for _ in range(30):  # every process follows the change within about a second
            if "Deprecation" in reply.headers:
                break
            reply = predict(session, server.url, key, "2")
        assert reply.status_code == 200
        assert reply.headers["Deprecation"] == f"@{int((now - timedelta(days=1)).timestamp())}"
        assert reply.headers["Sunset"].endswith("GMT")
        assert "Deprecation" not in predict(session, server.url, key, "1").headers
        deadline = timezone.now() + timedelta(seconds=15)
        while reply.status_code == 200 and timezone.now() < deadline:
            reply = predict(session, server.url, key, "2")
        assert reply.status_code == 404
        assert "retired" in reply.json()["detail"]
