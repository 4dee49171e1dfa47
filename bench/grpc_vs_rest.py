"""REST v1 JSON (wrk) against the gRPC data plane (h2load) on one box, side by side, metered.

    .venv/bin/python bench/grpc_vs_rest.py [--seconds 10] [--connections 16] [--keepalive]
        [--services]

One fresh data dir (SQLite, production settings; `--services`: a private PostgreSQL with the
5 ms emulated WAL flush and a private Redis, as `make bench`'s services layout), gunicorn
(`mlapi.serve web`, 2 sync workers) and the gRPC servers (`python -m predictions.grpc`,
`--grpc-processes` of them on one port as `make run` starts them), both metered and recorded
like production.
Cases: one iris row and a 1,000-row FP64 batch, each over REST (`POST /api/v1/models/iris/
predict`, wrk) and over gRPC (`ModelInfer` with raw contents, h2load with a prebuilt
length-prefixed body). h2load cannot read `grpc-status`, so answers and errors are counted from
the usage records each case wrote. Server CPU per request is the servers' CPU time over the
case (psutil, whole process trees) divided by the calls they recorded. `--keepalive` adds the
REST single-row case on gunicorn's gthread workers (keep-alive connections) via GUNICORN_CMD_ARGS.
Needs Debian's `wrk` and `nghttp2-client` (h2load). Loopback only; bounded by --seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import loadgen, servers, stores
from bench.cpu import CpuMeter, _tree_seconds
from bench.wsgi_cpu import IRIS, grpc_request

ROWS = {"1 row": 1, "1000 rows": 1000}


def grpc_body(rows: int) -> bytes:
    """A gRPC length-prefixed `ModelInferRequest` frame (raw FP64 contents) for h2load."""
    message = grpc_request(rows)
    return b"\0" + struct.pack(">I", len(message)) + message


def start_grpc(env: dict, log_dir: Path, processes: int = 1) -> tuple[list[servers.Server], int]:
    """`processes` gRPC servers on one port (SO_REUSEPORT, as `mlapi.serve` runs them)."""
    port = servers.free_port()
    env = {**env, "HOST": "127.0.0.1", "MLAPI_GRPC_PORT": str(port)}
    if processes > 1:
        env["MLAPI_GRPC_REUSEPORT"] = "1"
    started = []
    for n in range(processes):
        command = [servers.PYTHON, "-m", "predictions.grpc"]
        proc, log = servers._spawn(f"grpc-{n}", command, env, log_dir)
        started.append(servers.Server(f"grpc-{n}", f"127.0.0.1:{port}", proc, log))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for server in started:
            if server.proc.poll() is not None:
                raise RuntimeError(f"a gRPC server exited:\n{server.log_path.read_text()[-3000:]}")
        if all("gRPC data plane on" in s.log_path.read_text() for s in started):
            return started, port
        time.sleep(0.2)
    raise RuntimeError("the gRPC servers did not come up")


def run_h2load(url: str, body: Path, key: str, *, connections: int, seconds: float) -> dict:
    args = [
        shutil.which("h2load") or "h2load", f"-c{connections}", "-m1", f"-t{min(2, connections)}",
        "-D", str(max(1, round(seconds))), "-d", str(body),
        "-H", "content-type: application/grpc", "-H", "te: trailers", "-H", f"x-api-key: {key}",
        url,
    ]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\b", out)
    if rps is None:
        raise RuntimeError(f"h2load printed no summary:\n{out[-2000:]}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    mean_ms = float(mean.group(1)) * scale[mean.group(2)] if mean else 0.0
    return {"rps": float(rps.group(2)), "mean_ms": round(mean_ms, 2)}


def recorded(db: Path | str, after_id: int) -> tuple[int, dict]:
    """(last record id, {(protocol, status): (calls, predictions)}) since `after_id`, from
    the SQLite file `db` or the PostgreSQL URL `db`."""
    sql = (
        "SELECT protocol, status, count(*), sum(predictions), max(id) FROM usage_usagerecord"
        " WHERE id > {} GROUP BY protocol, status"
    )
    if isinstance(db, str):
        import psycopg

        with psycopg.connect(db) as conn:
            rows = conn.execute(sql.format("%s"), (after_id,)).fetchall()
    else:
        with sqlite3.connect(db, timeout=30) as conn:
            rows = conn.execute(sql.format("?"), (after_id,)).fetchall()
    last = max([after_id, *(r[4] for r in rows)])
    return last, {f"{r[0]} {r[1]}": (r[2], r[3]) for r in rows}


def measure(name, run, pids, db, last_id, seconds) -> tuple[dict, int]:
    time.sleep(1.0)  # the warm-up's usage records land before the case starts
    last_id, _ = recorded(db, last_id)
    started = time.monotonic()
    cpu_before = _tree_seconds(pids)
    meter = CpuMeter(pids)
    figures = run()
    other = meter.stop()
    cpu = _tree_seconds(pids) - cpu_before
    elapsed = time.monotonic() - started
    time.sleep(1.5)  # the servers' usage writers flush every 0.5 s
    last_id, counts = recorded(db, last_id)
    calls = sum(n for n, _ in counts.values())
    ok = sum(n for key, (n, _) in counts.items() if key.endswith(" 200"))
    predictions = sum(p or 0 for _, p in counts.values())
    row = {
        "case": name,
        "rps": figures["rps"],
        "rows_per_s": round(predictions / elapsed),
        "server_cpu_ms_per_call": round(cpu * 1000 / calls, 3) if calls else None,
        "errors": calls - ok,
        "recorded": counts,
        "other_cpu_cores": other,
        **{k: v for k, v in figures.items() if k in ("p50_ms", "p99_ms", "mean_ms")},
    }
    print(json.dumps(row), flush=True)
    return row, last_id


def rest_case(base: str, key: str, rows: int) -> loadgen.Case:
    body = json.dumps({"instances": [IRIS] * rows}).encode()
    return loadgen.Case("r", f"REST {rows}", "POST", f"{base}/api/v1/models/iris/predict", body,
                        {"X-API-Key": key, "Content-Type": "application/json"})  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--keepalive", action="store_true")
    parser.add_argument(
        "--grpc-processes", type=int, default=2, help="gRPC servers on the port (make run: 2)"
    )
    parser.add_argument(
        "--services", action="store_true", help="private PostgreSQL (5 ms flush) + Redis"
    )
    args = parser.parse_args(argv)
    servers.stop_cleanly_on_signals()
    with contextlib.ExitStack() as stack:
        services: dict = {}
        if args.services:
            layout = stack.enter_context(stores.services_layout(mode="private", delay_us=5000))
            services = layout["env"]
            print(f"services: {layout['where']}", flush=True)
        results = run_cases(args, services)
    print("\n| case | calls/s | rows/s | server CPU ms/call | errors | other CPU cores |")
    print("|---|---|---|---|---|---|")
    for r in results:
        cells = (r["case"], f"{r['rps']:.0f}", r["rows_per_s"], r["server_cpu_ms_per_call"],
                 r["errors"], r["other_cpu_cores"])  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |")
    return 0


def run_cases(args, services: dict) -> list[dict]:
    """Start the servers on a fresh data dir and run every case; the result rows."""
    tmp = Path(tempfile.mkdtemp(prefix="mlapi-grpc-bench-"))
    env = servers.mlapi_env(tmp / "data", services=services)
    key = servers.prepare_mlapi(env)["api_key"]
    db = services.get("DATABASE_URL") or tmp / "data" / "mlapi.sqlite3"
    running: list[servers.Server] = []
    results, last_id = [], 0
    try:
        web = servers.start_mlapi(env, tmp, workers=2, with_worker=False)
        running.append(web)
        rpcs, port = start_grpc(env, tmp, args.grpc_processes)
        running += rpcs
        rpc_pids = [rpc.proc.pid for rpc in rpcs]
        pids = [web.proc.pid, *rpc_pids]
        url = f"http://127.0.0.1:{port}/inference.GRPCInferenceService/ModelInfer"
        for label, rows in ROWS.items():
            case = rest_case(web.base_url, key, rows)
            loadgen.run_case(case, connections=2, seconds=1)  # warm
            row, last_id = measure(
                f"REST v1 JSON, {label}",
                lambda c=case: loadgen.run_case(c, connections=args.connections,
                                                seconds=args.seconds),
                pids, db, last_id, args.seconds,
            )  # fmt: skip
            results.append(row)
            body = tmp / f"grpc-{rows}.bin"
            body.write_bytes(grpc_body(rows))
            run_h2load(url, body, key, connections=2, seconds=1)  # warm
            row, last_id = measure(
                f"gRPC raw FP64, {label}",
                lambda b=body: run_h2load(url, b, key, connections=args.connections,
                                          seconds=args.seconds),
                pids, db, last_id, args.seconds,
            )  # fmt: skip
            results.append(row)
        if args.keepalive:
            web.stop()
            running.remove(web)
            web = servers.start_mlapi(
                {**env, "GUNICORN_CMD_ARGS": "--worker-class gthread --threads 4"},
                tmp, workers=2, with_worker=False,
            )  # fmt: skip
            running.append(web)
            case = rest_case(web.base_url, key, 1)
            loadgen.run_case(case, connections=2, seconds=1)
            row, last_id = measure(
                "REST v1 JSON, 1 row, gthread (keep-alive)",
                lambda: loadgen.run_case(case, connections=args.connections,
                                         seconds=args.seconds),
                [web.proc.pid, *rpc_pids], db, last_id, args.seconds,
            )  # fmt: skip
            results.append(row)
    finally:
        for server in running:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return results


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
