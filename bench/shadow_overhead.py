"""p50/p99 of unpinned iris predictions with and without a 100 % shadow, in one run.

    .venv/bin/python bench/shadow_overhead.py [--requests 3000] [--rounds 3] [--connections 2]

One SQLite data dir (the default setup) gets the demo models plus iris version 2 (another
100-tree forest, so the shadow costs as much as the answer). The web server
(`mlapi.serve web`, production settings, 2 workers) is started once; each round switches the
rollout between "no shadow" and "shadow 2 at 100 %" (the order alternates between rounds),
waits for every worker to follow, warms up, then `--connections` keep-alive clients send
`--requests` predictions in total and the client-side latency of each is kept. Reported per
configuration: median of the per-round p50 and p99, and the shadow's added p99 against the
no-shadow baseline of the same run. The shadow counters in /metrics show what was scored and
dropped. The machine is shared: read the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import servers

BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
ADD_V2 = (
    "from sklearn.datasets import load_iris; "
    "from sklearn.ensemble import RandomForestClassifier as Forest; "
    "from predictions.demo import IRIS_SPECIES, train_iris; "
    "from predictions.registry import register_model_version; "
    "data = load_iris(); _, schema = train_iris(); "
    "model = Forest(n_estimators=100, random_state=7, n_jobs=1); "
    "model.fit(data.data, IRIS_SPECIES[data.target]); "
    "register_model_version(name='iris', estimator=model, input_schema=schema, version='2')"
)
ROLLOUT = (
    "from predictions.models import MLModel; from predictions.operations import set_rollout; "
    "set_rollout(model=MLModel.objects.get(name='iris'), spec={spec})"
)
CONFIGS = {
    "no-shadow": {"default": "1", "canary": None, "shadow": None},
    "shadow-100": {"default": "1", "canary": None, "shadow": {"version": "2", "percent": 100}},
}


def client_latencies(port: int, key: str, count: int) -> list[float]:
    """ms per request on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "X-API-Key": key}
    out = []
    for _ in range(count):
        started = time.perf_counter()
        conn.request("POST", "/api/v1/models/iris/predict", BODY, headers)
        reply = conn.getresponse()
        reply.read()
        out.append((time.perf_counter() - started) * 1000)
        if reply.status != 200:
            raise SystemExit(f"predict answered {reply.status}")
    conn.close()
    return out


def measure(port: int, key: str, requests: int, connections: int) -> list[float]:
    results: list[list[float]] = [[] for _ in range(connections)]

    def run(i: int) -> None:
        results[i] = client_latencies(port, key, requests // connections)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [value for chunk in results for value in chunk]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def shadow_metrics(base_url: str) -> list[str]:
    _status, text = servers.http("GET", base_url + "/metrics")
    lines = text if isinstance(text, str) else json.dumps(text)
    return [line for line in lines.splitlines() if line.startswith("mlapi_shadow_")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="mlapi-bench-shadow-"))
    env = servers.mlapi_env(data_dir, services={})
    key = servers.prepare_mlapi(env)["api_key"]
    servers.manage(env, "shell", "-c", ADD_V2)
    server = servers.start_mlapi(env, data_dir, workers=args.workers, with_worker=False)
    port = int(server.base_url.rsplit(":", 1)[1])
    figures: dict[str, dict[str, list[float]]] = {c: {"p50": [], "p99": []} for c in CONFIGS}
    try:
        for round_no in range(1, args.rounds + 1):
            order = list(CONFIGS) if round_no % 2 else list(reversed(CONFIGS))
            for config in order:
                servers.manage(env, "shell", "-c", ROLLOUT.format(spec=repr(CONFIGS[config])))
                time.sleep(2)  # every worker re-reads the registry stamp within a second
                measure(port, key, 300, args.connections)  # warm-up (routes, shadow load)
                latencies = measure(port, key, args.requests, args.connections)
                p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
                figures[config]["p50"].append(p50)
                figures[config]["p99"].append(p99)
                print(f"round {round_no} {config:<10} p50 {p50:.3f} ms  p99 {p99:.3f} ms")
        print("\n".join(shadow_metrics(server.base_url)))
    finally:
        server.stop()
    summary = {
        config: {name: round(statistics.median(values), 3) for name, values in per.items()}
        for config, per in figures.items()
    }
    added = summary["shadow-100"]["p99"] - summary["no-shadow"]["p99"]
    print(json.dumps(summary | {"added_p99_ms": round(added, 3)}, indent=2))


if __name__ == "__main__":
    main()
