"""Predict throughput with usage recording off, buffered and synchronous, in one run.

    .venv/bin/python bench/usage_overhead.py [--seconds 10] [--rounds 2] [--connections 16]

One SQLite data dir (the default setup) is prepared once; for each round the same gunicorn
web server (`mlapi.serve web`, production settings) is started three times with
MLAPI_USAGE_RECORDING=off, MLAPI_USAGE_MODE=buffered and MLAPI_USAGE_MODE=sync, and wrk drives
`POST /api/v1/models/iris/predict` (1 row, API key) with 16 connections. The order alternates
between rounds. After each recorded run the bench also counts the usage records written, to
show none were lost (records >= responses wrk counted: wrk drops the replies in flight when it
stops, which the server still answered and recorded). The machine is shared, so each run also
reports the server's own CPU time per request (its process tree, psutil) and the CPU other
processes used meanwhile: CPU per request is the figure that noise hardly moves.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cpu, loadgen, servers

IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
CONFIGS = {
    "off": {"MLAPI_USAGE_RECORDING": "off"},
    "buffered": {"MLAPI_USAGE_RECORDING": "on", "MLAPI_USAGE_MODE": "buffered"},
    "sync": {"MLAPI_USAGE_RECORDING": "on", "MLAPI_USAGE_MODE": "sync"},
    # the buffered writer with fewer, larger write transactions
    "buffered-2s": {
        "MLAPI_USAGE_RECORDING": "on",
        "MLAPI_USAGE_MODE": "buffered",
        "MLAPI_USAGE_FLUSH_INTERVAL_S": "2",
        "MLAPI_USAGE_FLUSH_SIZE": "2000",
    },
}
COUNT_RECORDS = "from usage.models import UsageRecord; print(UsageRecord.objects.count())"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--configs", default="off,buffered,sync", help="comma-separated")
    parser.add_argument("--data-dir", default="", help="reuse a prepared data dir")
    parser.add_argument("--requests", type=int, default=1500, help="per in-process run")
    parser.add_argument("--inprocess", default="", help=argparse.SUPPRESS)  # internal: API key
    parser.add_argument("--out", default="", help="write the results as JSON here")
    return parser.parse_args(argv)


def run_once(env: dict, config: str, case_body: bytes, api_key: str, args, log_dir: Path):
    server = servers.start_mlapi(
        {**env, **CONFIGS[config]}, log_dir, workers=args.workers, with_worker=False
    )
    try:
        case = loadgen.Case(
            "a",
            "metered iris predict (1 row)",
            "POST",
            f"{server.base_url}/api/v1/models/iris/predict",
            case_body,
            {"Content-Type": "application/json", "X-API-Key": api_key},
        )
        status, body = servers.http(case.method, case.url, case.body, case.headers)
        if status != 200:
            raise SystemExit(f"predict answered {status}: {body}")
        loadgen.run_case(case, connections=args.connections, seconds=2)  # warm-up
        before = int(servers.manage(env, "shell", "-c", COUNT_RECORDS).split()[-1])
        cpu.wait_for_quiet([server.proc.pid], limit=0.3, max_wait=10)
        meter = cpu.CpuMeter([server.proc.pid])
        server_cpu = cpu._tree_seconds([server.proc.pid])
        figures = loadgen.run_case(case, connections=args.connections, seconds=args.seconds)
        server_cpu = cpu._tree_seconds([server.proc.pid]) - server_cpu
        figures["other_cpu_cores"] = meter.stop()
        figures["server_cpu_ms_per_request"] = round(1000 * server_cpu / figures["requests"], 3)
    finally:
        server.stop()  # SIGTERM: buffered records are flushed by gunicorn's worker_exit
    after = int(servers.manage(env, "shell", "-c", COUNT_RECORDS).split()[-1])
    figures["records_written"] = after - before
    return figures


def inprocess_cpu(args) -> dict:
    """CPU seconds per request inside one process (Django test client, real predict route).

    `time.process_time()` counts this process only (the writer thread included, and the final
    flush is inside the measured span), so other processes' load hardly moves it.
    """
    sys.path.insert(0, str(servers.BASE_DIR))
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from usage.recording import flush_usage

    body = json.dumps({"instances": [IRIS_ROW]}).encode()
    results: dict[str, list[float]] = {name: [] for name in args.configs.split(",")}
    warm = Client(HTTP_HOST="127.0.0.1", HTTP_X_API_KEY=args.inprocess)
    for _ in range(500):  # models, caches and allocator warm before any measured run
        warm.post("/api/v1/models/iris/predict", body, content_type="application/json")
    for round_no in range(1, args.rounds + 1):
        order = list(results) if round_no % 2 else list(reversed(results))
        for config in order:
            settings.MLAPI_USAGE_RECORDING = config != "off"
            settings.MLAPI_USAGE_MODE = "sync" if config == "sync" else "buffered"
            client = Client(HTTP_HOST="127.0.0.1", HTTP_X_API_KEY=args.inprocess)

            def call(client=client):
                return client.post(
                    "/api/v1/models/iris/predict", body, content_type="application/json"
                )

            assert call().status_code == 200
            for _ in range(100):
                call()
            flush_usage()
            started = time.process_time()
            for _ in range(args.requests):
                call()
            flush_usage()
            per_request = (time.process_time() - started) / args.requests
            results[config].append(round(per_request * 1e6, 1))
            print(f"in-process round {round_no} {config:<9} {per_request * 1e6:.1f} us CPU/req")
    return {name: statistics.median(values) for name, values in results.items()}


def run_inprocess(env: dict, api_key: str, args) -> dict:
    command = [sys.executable, __file__, "--inprocess", api_key, "--configs", args.configs]
    command += ["--rounds", str(args.rounds), "--requests", str(args.requests)]
    result = subprocess.run(
        command, cwd=servers.BASE_DIR, env=env, capture_output=True, text=True, check=True
    )
    print(result.stdout.rstrip())
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.inprocess:
        print(json.dumps(inprocess_cpu(args)))
        return 0
    tmp = Path(args.data_dir or tempfile.mkdtemp(prefix="usage-bench-"))
    env = servers.mlapi_env(tmp / "data", services={})
    configs = args.configs.split(",")
    print(f"preparing {tmp} (migrate, demo models, bench subscriber)...", flush=True)
    api_key = servers.prepare_mlapi(env)["api_key"]
    body = json.dumps({"instances": [IRIS_ROW]}).encode()
    results: dict[str, list[dict]] = {name: [] for name in configs}
    for round_no in range(1, args.rounds + 1):
        order = configs if round_no % 2 else list(reversed(configs))
        for config in order:
            figures = run_once(env, config, body, api_key, args, tmp)
            results[config].append(figures)
            print(
                f"round {round_no} {config:<9} {figures['rps']:>8.1f} req/s  "
                f"p50 {figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms  "
                f"server CPU {figures['server_cpu_ms_per_request']:.3f} ms/req  "
                f"other CPU {figures['other_cpu_cores']:.2f} cores  "
                f"non-2xx {figures['non_2xx']}  wrk responses {figures['requests']}  "
                f"records written {figures['records_written']}",
                flush=True,
            )
    summary = {
        name: {
            "rps": round(statistics.median(r["rps"] for r in runs), 1),
            "cpu_ms": round(statistics.median(r["server_cpu_ms_per_request"] for r in runs), 3),
        }
        for name, runs in results.items()
    }
    off = summary["off"]
    for name in (c for c in configs if c != "off"):
        mine = summary[name]
        print(
            f"{name:<11} median {mine['rps']:.1f} req/s vs off {off['rps']:.1f} "
            f"({100 * (1 - mine['rps'] / off['rps']):+.1f} % throughput cost); server CPU "
            f"{mine['cpu_ms']:.3f} vs {off['cpu_ms']:.3f} ms/request "
            f"({100 * (mine['cpu_ms'] / off['cpu_ms'] - 1):+.1f} %)"
        )
    cpu_us = run_inprocess(env, api_key, args)
    for name in (c for c in configs if c != "off"):
        print(
            f"in-process CPU per request: {name} {cpu_us[name]:.1f} us vs off {cpu_us['off']:.1f}"
            f" us ({100 * (cpu_us[name] / cpu_us['off'] - 1):+.1f} %)"
        )
    if args.out:
        out = {"summary": summary, "runs": results, "inprocess_cpu_us": cpu_us}
        Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
