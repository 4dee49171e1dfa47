"""Locust load test for mlapi: subscribers with API keys, weighted like real traffic.

Each simulated subscriber mostly predicts one Iris row, sometimes a small batch, prices houses,
calls the V2 (Open Inference Protocol) and KServe V1 routes, reads the model catalogue, now and
then looks at its usage (management plane: JWT) and submits a small batch job then polls it.

Credentials, either
- a provisioning step: run bench/provision.py in the server's environment and point
  MLAPI_BENCH_CREDENTIALS at its output, e.g.
    BENCH_PASSWORD=bench-pass-123 BENCH_KEYS=4 .venv/bin/python bench/provision.py > /tmp/bench.json
    MLAPI_BENCH_CREDENTIALS=/tmp/bench.json .venv/bin/locust -f bench/locustfile.py \
        --host http://127.0.0.1:8000
- or env vars: MLAPI_API_KEYS="mlk_a.b,mlk_c.d" (one or more keys, shared round-robin) and, for
  the usage task, MLAPI_USERNAME / MLAPI_PASSWORD (without them the usage task is skipped).
Then open http://127.0.0.1:8089 (web UI), or run headless:
    ... --headless -u 50 -r 10 -t 1m --only-summary
MLAPI_LOCUST_WAIT="0.5,2" sets the think time between a user's requests (seconds, min,max).
A 429 counts as a failure here: the bench plan never throttles, so one means a limit misfired.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from datetime import UTC, datetime, timedelta

from locust import FastHttpUser, between, task

IRIS_RANGES = {
    "sepal_length": (4.3, 7.9),
    "sepal_width": (2.0, 4.4),
    "petal_length": (1.0, 6.9),
    "petal_width": (0.1, 2.5),
}
HOUSE_CATEGORIES = {
    "property_type": ["D", "S", "T", "F", "O"],
    "old_new": ["Y", "N"],
    "duration": ["F", "L"],
}


def _credentials() -> dict:
    path = os.environ.get("MLAPI_BENCH_CREDENTIALS")
    if path:
        with open(path) as handle:
            data = json.load(handle)
        keys = data.get("api_keys") or [data["api_key"]]
        return {"keys": keys, "username": data.get("username"), "password": data.get("password")}
    keys = [k.strip() for k in os.environ.get("MLAPI_API_KEYS", "").split(",") if k.strip()]
    return {
        "keys": keys,
        "username": os.environ.get("MLAPI_USERNAME"),
        "password": os.environ.get("MLAPI_PASSWORD"),
    }


CREDENTIALS = _credentials()
KEY_CYCLE = itertools.cycle(CREDENTIALS["keys"] or [""])
WAIT = [float(x) for x in os.environ.get("MLAPI_LOCUST_WAIT", "0.5,2").split(",")]


def iris_row() -> dict:
    return {name: round(random.uniform(lo, hi), 1) for name, (lo, hi) in IRIS_RANGES.items()}


def house_row() -> dict:
    return {name: random.choice(values) for name, values in HOUSE_CATEGORIES.items()}


class Subscriber(FastHttpUser):
    """One subscriber's client: an API key for the data plane, a JWT for its usage page."""

    wait_time = between(*WAIT)

    def on_start(self) -> None:
        if not CREDENTIALS["keys"]:
            raise RuntimeError("set MLAPI_BENCH_CREDENTIALS or MLAPI_API_KEYS (see docstring)")
        self.key_headers = {"X-API-Key": next(KEY_CYCLE)}
        self.access_token = None
        self.job_ids: list[str] = []

    def _predict(self, model: str, instances: list, name: str, **extra) -> None:
        self.client.post(
            f"/api/v1/models/{model}/predict",
            json={"instances": instances, **extra},
            headers=self.key_headers,
            name=name,
        )

    @task(40)
    def iris_single(self) -> None:
        self._predict("iris", [iris_row()], "predict iris x1")

    @task(10)
    def iris_batch(self) -> None:
        rows = [iris_row() for _ in range(random.randint(2, 10))]
        self._predict("iris", rows, "predict iris x2-10", parameters={"probabilities": True})

    @task(15)
    def house_single(self) -> None:
        self._predict("house-price", [house_row()], "predict house-price x1")

    @task(5)
    def house_batch(self) -> None:
        rows = [house_row() for _ in range(random.randint(2, 10))]
        self._predict("house-price", rows, "predict house-price x2-10")

    @task(10)
    def v2_infer_iris(self) -> None:
        rows = [list(iris_row().values()) for _ in range(random.randint(1, 4))]
        body = {
            "id": f"locust-{random.getrandbits(32)}",
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(rows), 4],
                    "datatype": "FP64",
                    "data": [v for row in rows for v in row],
                }
            ],
        }
        self.client.post(
            "/v2/models/iris/infer", json=body, headers=self.key_headers, name="v2 infer iris"
        )

    @task(3)
    def kserve_v1_house(self) -> None:
        self.client.post(
            "/v1/models/house-price:predict",
            json={"instances": [house_row()]},
            headers=self.key_headers,
            name="kserve v1 house-price",
        )

    @task(5)
    def catalogue(self) -> None:
        self.client.get("/api/v1/models", headers=self.key_headers, name="list models")

    @task(2)
    def usage(self) -> None:
        if not (CREDENTIALS["username"] and CREDENTIALS["password"]):
            return
        if self.access_token is None and not self._login():
            return
        end = datetime.now(UTC).date()
        params = f"start={end - timedelta(days=6)}&end={end}"
        with self.client.get(
            f"/api/v1/usage?{params}",
            headers={"Authorization": f"Bearer {self.access_token}"},
            name="usage (7 days, JWT)",
            catch_response=True,
        ) as response:
            if response.status_code == 401:  # access token expired: log in again next time
                self.access_token = None
                response.success()

    def _login(self) -> bool:
        response = self.client.post(
            "/api/v1/auth/token",
            json={"username": CREDENTIALS["username"], "password": CREDENTIALS["password"]},
            name="auth token",
        )
        if response.status_code == 200:
            self.access_token = response.json()["access"]
        return self.access_token is not None

    @task(1)
    def submit_job(self) -> None:
        rows = [iris_row() for _ in range(random.randint(20, 200))]
        response = self.client.post(
            "/api/v1/jobs",
            json={"model": "iris", "instances": rows},
            headers=self.key_headers,
            name="submit job (iris, 20-200 rows)",
        )
        if response.status_code == 202:
            self.job_ids = [*self.job_ids[-4:], response.json()["id"]]

    @task(2)
    def poll_job(self) -> None:
        if self.job_ids:
            self.client.get(
                f"/api/v1/jobs/{random.choice(self.job_ids)}",
                headers=self.key_headers,
                name="job status",
            )
