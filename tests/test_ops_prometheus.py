"""Operations: the alert rules pass `promtool test rules`, the dashboard and the rules only use
metrics a live server exports, and a real Prometheus scraping a live server gets per-model
request rates from PromQL. Debian's `prometheus` package provides both binaries (.ci/run
installs it); without them these tests skip, and fail under MLAPI_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import requests
import yaml

from mlapi.celery import worker_heartbeat
from tests.conftest import REQUIRE_SERVICES
from tests.factories import ApiKeyFactory, PlanFactory, SubscriptionFactory
from tests.servers import BASE_DIR, GunicornServer, free_port
from tests.support.stores import wait_for

OPS = BASE_DIR / "ops"
INSTANCES = {
    "iris": [[5.1, 3.5, 1.4, 0.2]],
    "house-price": [{"property_type": "D", "old_new": "N", "duration": "F"}],
}


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (Debian package prometheus)"
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def test_alert_rules_pass_their_promtool_unit_tests():
    result = subprocess.run(
        [binary("promtool"), "test", "rules", "alerts_test.yml"],
        cwd=OPS / "prometheus",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rules = yaml.safe_load((OPS / "prometheus" / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert names == {
        "MlapiHighErrorRate",
        "MlapiHighLatencyP99",
        "MlapiLimitsStoreUnavailable",
        "MlapiJobBacklog",
        "MlapiWorkerDown",
    }


def test_compose_provisions_prometheus_with_the_rules_and_grafana_with_the_dashboard():
    compose = yaml.safe_load((BASE_DIR / "compose.yaml").read_text())
    mounts = " ".join(compose["services"]["prometheus"]["volumes"])
    assert "ops/prometheus/alerts.yml" in mounts and "ops/prometheus/prometheus.yml" in mounts
    grafana = " ".join(compose["services"]["grafana"]["volumes"])
    assert "ops/grafana/provisioning" in grafana and "ops/grafana/dashboards" in grafana
    dashboard = json.loads((OPS / "grafana" / "dashboards" / "mlapi.json").read_text())
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in ("traffic", "latency", "errors by code", "quota used by plan", "jobs"):
        assert topic in titles


def used_metric_names() -> set[str]:
    """Every mlapi_* series the dashboard and the alert rules query."""
    text = (OPS / "grafana" / "dashboards" / "mlapi.json").read_text()
    text += (OPS / "prometheus" / "alerts.yml").read_text()
    names = set(re.findall(r"\bmlapi_[a-z_]+", text))
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in names}


def prometheus_config(tmp_path, target: str) -> str:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(OPS / "prometheus" / "alerts.yml")],
                "scrape_configs": [
                    {"job_name": "mlapi", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    return str(config)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_prometheus_gets_per_model_request_rates_from_a_live_server(
    live_demo_models, tmp_path
):
    prometheus = binary("prometheus")
    key = ApiKeyFactory(subscription=SubscriptionFactory(plan=PlanFactory())).plaintext
    worker_heartbeat()  # the beat task's body, as a worker runs it (same cache as the server)
    with GunicornServer(workers=2) as server:
        for name, instances in INSTANCES.items():
            for _ in range(5):
                reply = requests.post(
                    f"{server.url}/api/v1/models/{name}/predict",
                    json={"instances": instances},
                    headers={"X-API-Key": key},
                    timeout=10,
                )
                assert reply.status_code == 200, reply.text
        exported = requests.get(f"{server.url}/metrics", timeout=10).text
        for name in used_metric_names():  # the dashboard and the alerts query real series
            assert re.search(rf"^{name}(_bucket|_total)?[{{ ]", exported, re.M), name

        port = free_port()
        process = subprocess.Popen(
            [prometheus, f"--config.file={prometheus_config(tmp_path, server.url[7:])}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        api = f"http://127.0.0.1:{port}/api/v1/query"
        rates: dict[str, float] = {}

        def per_model_rates() -> bool:
            for name in INSTANCES:  # keep traffic flowing while Prometheus scrapes
                requests.post(
                    f"{server.url}/api/v1/models/{name}/predict",
                    json={"instances": INSTANCES[name]},
                    headers={"X-API-Key": key},
                    timeout=10,
                )
            try:
                query = "sum by (model) (rate(mlapi_predict_requests_total[10s]))"
                result = requests.get(api, params={"query": query}, timeout=5).json()
            except (requests.RequestException, ValueError):
                return False
            rates.update(
                {r["metric"]["model"]: float(r["value"][1]) for r in result["data"]["result"]}
            )
            return all(rates.get(name, 0) > 0 for name in INSTANCES)

        try:
            assert wait_for(per_model_rates, 60, interval=1.0), rates
        finally:
            process.terminate()
            process.wait(timeout=30)
