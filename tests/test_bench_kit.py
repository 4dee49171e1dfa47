"""The load-test kit in bench/: wrk summaries, medians and ratios, the baseline, provisioning.

Real components only: the baseline is served by uvicorn, wrk is Debian's wrk, provisioning goes
through the operator commands against the test database. No timing is asserted here.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.urls import Resolver404, resolve

from bench import loadgen, report, servers
from bench.provision import BENCH_PLAN, provision
from usage.recording import flush_usage

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"


def wrk_line(statuses: dict, *, requests: int = 100, duration_us: int = 2_000_000) -> str:
    payload = {
        "requests": requests,
        "duration_us": duration_us,
        "bytes": 1000,
        "latency_us": {"p50": 1500, "p90": 3000, "p99": 9000, "max": 12000, "mean": 1800.0},
        "socket_errors": {"connect": 0, "read": 1, "write": 0, "timeout": 2},
        "statuses": statuses,
    }
    return "Running 2s test\n  2 threads\nBENCH_JSON " + json.dumps(payload) + "\n"


def test_wrk_summary_counts_every_non_2xx_status_and_socket_error():
    figures = loadgen.parse_wrk_output(wrk_line({"200": 90, "429": 6, "503": 4}))
    assert figures["rps"] == 50.0
    assert figures["ok_rps"] == 45.0
    assert figures["non_2xx"] == 10
    assert figures["non_2xx_by_status"] == {"429": 6, "503": 4}
    assert figures["socket_errors"] == 3
    assert (figures["p50_ms"], figures["p99_ms"]) == (1.5, 9.0)


def test_wrk_output_without_the_summary_line_is_an_error_not_a_zero():
    with pytest.raises(RuntimeError, match="BENCH_JSON"):
        loadgen.parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def run(case: str, connections: int, rps: float, round_no: int, **extra) -> dict:
    figures = {"p50_ms": 2.0, "p99_ms": 10.0, "non_2xx": 0, "socket_errors": 0}
    figures.update(extra)
    label = {"a": "metered", "b": "floor", "c": "baseline"}[case]
    return {"case": case, "label": label, "connections": connections, "rps": rps,
            "round": round_no, **figures}  # fmt: skip


def test_summary_takes_medians_over_rounds_and_ratios_of_medians():
    runs = [
        run("a", 16, 900, 1), run("b", 16, 1500, 1), run("c", 16, 100, 1),
        run("a", 16, 1100, 2), run("b", 16, 1700, 2), run("c", 16, 140, 2),
        run("a", 16, 1000, 3), run("b", 16, 1600, 3), run("c", 16, 120, 3, non_2xx=2),
    ]  # fmt: skip
    summary = report.summarise(runs)
    assert summary["cases"]["16"]["a"]["rps"] == 1000
    assert summary["cases"]["16"]["a"]["rps_each_round"] == [900, 1100, 1000]
    assert summary["cases"]["16"]["c"]["non_2xx"] == 2  # summed, never hidden by a median
    assert summary["ratios"]["16"] == {"a/b": 0.625, "a/c": 8.333}


def test_goals_are_judged_at_16_connections_and_unmeasured_ones_say_so():
    runs = [run("a", 16, 1000, 1, p99_ms=25.0), run("b", 16, 1600, 1), run("c", 16, 150, 1)]
    goals = report.check_goals(report.summarise(runs), rss_mb=None)
    assert goals["a/c >= 8"]["met"] is False
    assert goals["a/b >= 0.5"]["met"] is True
    assert goals["p99(a) <= 30 ms"]["met"] is True
    assert goals["zero non-2xx (a)"]["met"] is True
    assert goals["worker RSS <= 250 MB"] == {"value": None, "met": None}


def test_servers_helper_refuses_any_address_but_loopback():
    with pytest.raises(ValueError, match="loopback"):
        servers.http("GET", "http://10.0.0.1:80/")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    server = servers.start_baseline(tmp_path_factory.mktemp("baseline"), workers=1)
    yield server
    server.stop()


def predict_baseline(server, body: bytes, token: str | None):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return servers.http("POST", server.base_url + "/predict", body, headers)


@pytest.mark.slow
def test_baseline_predicts_iris_with_a_valid_jwt(baseline):
    status, body = predict_baseline(
        baseline, b'{"data": [5.1, 3.5, 1.4, 0.2]}', baseline.extra["token"]
    )
    assert status == 200
    assert body == {"prediction": 0}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("token", "body", "status"),
    [
        (None, b'{"data": [5.1, 3.5, 1.4, 0.2]}', 401),
        ("not-a-jwt", b'{"data": [5.1, 3.5, 1.4, 0.2]}', 401),
        ("valid", b'{"data": [5.1, 3.5, 1.4]}', 422),
        ("valid", b'{"data": ["x", 3.5, 1.4, 0.2]}', 422),
        ("valid", b"{not json", 422),
    ],
    ids=["no-token", "bad-token", "three-features", "not-a-number", "bad-json"],
)
def test_baseline_rejects_missing_credentials_and_bad_input(baseline, token, body, status):
    token = baseline.extra["token"] if token == "valid" else token
    assert predict_baseline(baseline, body, token)[0] == status


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_wrk_script_posts_the_body_and_counts_statuses(baseline):
    good = loadgen.Case(
        "c", "baseline", "POST", baseline.base_url + "/predict",
        b'{"data": [5.1, 3.5, 1.4, 0.2]}',
        {"Content-Type": "application/json", "Authorization": f"Bearer {baseline.extra['token']}"},
    )  # fmt: skip
    figures = loadgen.run_case(good, connections=2, seconds=1)
    assert figures["requests"] > 0
    assert figures["non_2xx"] == 0
    bad = loadgen.Case("c", "no token", "POST", good.url, good.body, {})
    figures = loadgen.run_case(bad, connections=1, seconds=1)
    assert figures["non_2xx_by_status"] == {"401": figures["requests"]}


@pytest.mark.django_db
def test_provisioned_bench_plan_never_limits_and_its_key_authenticates(client):
    first = provision("bench", "bench", keys=2, password="bench-pass-123")
    again = provision("bench", "bench", keys=1)  # idempotent for the plan and the user
    assert len(first["api_keys"]) == 2
    assert again["api_key"] not in first["api_keys"]
    assert BENCH_PLAN["rate"] >= 1e6 and BENCH_PLAN["quota"] >= 1e15
    response = client.get("/api/v1/models", HTTP_X_API_KEY=first["api_keys"][1])
    assert response.status_code == 200
    flush_usage()  # write the request's usage record while the test database exists


def locust_paths() -> set[str]:
    """Every literal route the locustfile requests (f-strings with their model filled in)."""
    tree = ast.parse((BENCH_DIR / "locustfile.py").read_text())
    paths = set()
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if id(node) in parts:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.startswith(("/api/", "/v1/", "/v2/")):
                paths.add(node.value.split("?")[0])
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "iris" for v in node.values)
            if text.startswith(("/api/", "/v1/", "/v2/")):
                paths.add(
                    text.split("?")[0].replace("/jobs/iris", "/jobs/" + str(uuid.UUID(int=0)))
                )
    return paths


def test_every_route_the_locustfile_calls_exists():
    paths = locust_paths()
    assert {"/api/v1/models/iris/predict", "/v2/models/iris/infer", "/api/v1/jobs"} <= paths
    for path in paths:
        try:
            resolve(path)
        except Resolver404:
            pytest.fail(f"locustfile calls {path}, which no route serves")


@pytest.mark.slow
def test_locustfile_loads_in_locust():
    env = {**os.environ, "MLAPI_API_KEYS": "mlk_x.y"}
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(BENCH_DIR / "locustfile.py"), "--list"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Subscriber" in result.stdout + result.stderr
