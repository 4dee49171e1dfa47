"""Where the metered predict path spends its time: py-spy on the gunicorn workers under wrk load.

Starts mlapi exactly as bench/run.py does (production settings, fresh data dir, bench plan),
drives (a) metered iris predict and (b) the floor GET /healthz with wrk at 16 connections, and
samples every web worker with `py-spy record --subprocesses --idle` meanwhile. It prints, for each
case, the worker time one request costs (busy samples / rate / requests: includes blocking waits,
not the wait for the next connection) and its CPU time (psutil), how that time splits into
components (exclusive: each sample goes to the deepest matching frame), the inclusive share of
key functions, and self time by package. Raw collapsed stacks and a JSON summary go to
bench/results/profile-<UTC time>/.

Usage: .venv/bin/python bench/profile_predict.py [--seconds 20] [--rate 199] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psutil

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from bench import loadgen, run, servers  # noqa: E402

# Exclusive attribution: each busy sample goes to the deepest frame that matches any pattern
# below, and to the first component (in this order) whose pattern that frame matches.
COMPONENTS = [
    ("gunicorn: close (waits for the client's FIN)", ["close_graceful (gunicorn/util.py"]),
    ("gunicorn: write response", ["write (gunicorn/util.py", "(gunicorn/http/wsgi.py"]),
    ("gunicorn: accept, parse request, loop", ["(gunicorn/"]),
    ("usage recording (usage/)", ["(usage/"]),
    ("auth: API key lookup + check (keys/)", ["(keys/authentication.py", "(keys/keycache.py",
                                               "(keys/crypto.py", "(keys/principal.py"]),
    ("limits: rate + quota logic (keys/)", ["(keys/"]),
    ("predictions: validation", ["(predictions/validation.py", "(predictions/schema.py"]),
    ("predictions: inference (onnxruntime, ...)", ["(predictions/runtimes.py", "(onnxruntime/",
                                                    "(sklearn/", "(numpy/"]),
    ("predictions: view, metering, rendering", ["(predictions/"]),
    ("database (Django ORM + driver)", ["(django/db/", "(sqlite3/", "(psycopg/"]),
    ("cache (diskcache / redis)", ["(django/core/cache/", "(diskcache/", "(redis/"]),
    ("prometheus metrics", ["(prometheus_client/", "(mlapi/metrics.py"]),
    ("DRF (dispatch, request, response)", ["(rest_framework/"]),
    ("mlapi middleware / exceptions", ["(mlapi/"]),
    ("Django handler + middleware + http", ["(django/", "(whitenoise/", "(csp/", "(asgiref/"]),
]  # fmt: skip
# Inclusive: everything below these functions (so they overlap and include the database).
INCLUSIVE = [
    ("ApiKeyAuthentication.authenticate", "authenticate (keys/authentication.py"),
    ("keys.limits.admit (1 token + n quota units)", "admit (keys/limits.py"),
    ("UsageRecordingMiddleware.record", "record (usage/middleware.py"),
    ("PredictView.post", "post (predictions/views.py"),
    ("DRF APIView.dispatch", "dispatch (rest_framework/views.py"),
    ("Django WSGIHandler.__call__", "__call__ (django/core/handlers/wsgi.py"),
]
WAITING = ["wait (gunicorn/workers/sync.py", "accept (socket.py"]  # idle: waiting for a client


def is_waiting(frames: list[str]) -> bool:
    return any(w in frame for frame in frames[-3:] for w in WAITING)


def parse_raw(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) format: `frame;frame;... count` per line."""
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def package_of(frame: str) -> str:
    """'func (django/db/models/query.py)' -> 'django'; stdlib files have no directory."""
    inside = frame[frame.rfind("(") + 1 :].rstrip(")")
    return inside.split("/")[0] if "/" in inside else f"stdlib:{inside.split('.')[0]}"


def component_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for label, patterns in COMPONENTS:
            if any(p in frame for p in patterns):
                return label
    return "other (stdlib, gunicorn main loop)"


def breakdown(stacks: list[tuple[list[str], int]]) -> dict:
    """Busy worker samples: by component (exclusive), by key function (inclusive), by package."""
    worker = [(f, n) for f, n in stacks if any("init_process (gunicorn/" in x for x in f)]
    busy = [(f, n) for f, n in worker if not is_waiting(f)]
    total = sum(n for _, n in busy) or 1
    exclusive, packages = Counter(), Counter()
    for frames, n in busy:
        exclusive[component_of(frames)] += n
        packages[package_of(frames[-1])] += n
    inclusive = {
        label: sum(n for f, n in busy if any(pattern in x for x in f))
        for label, pattern in INCLUSIVE
    }
    return {
        "busy_samples": total,
        "waiting_samples": sum(n for _, n in worker) - total,
        "exclusive_pct": {k: round(100 * v / total, 1) for k, v in exclusive.most_common()},
        "inclusive_pct": {k: round(100 * v / total, 1) for k, v in inclusive.items()},
        "self_pct_by_package": {k: round(100 * v / total, 1) for k, v in packages.most_common(12)},
    }


def profile_case(case, server, args, out_dir: Path) -> dict:
    """wrk on one case while py-spy samples the gunicorn master and its workers."""
    raw = out_dir / f"profile-{case.key}.txt"
    workers = [psutil.Process(pid) for pid in server.web_worker_pids()]
    master = workers[0].parent().pid
    spy = subprocess.Popen(
        [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record",
         "--pid", str(master), "--subprocesses", "--idle", "--nolineno",
         "--rate", str(args.rate), "--duration", str(int(args.seconds) + 2),
         "--format", "raw", "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.5)  # let py-spy attach before the load starts
    cpu_before = sum(sum(p.cpu_times()[:2]) for p in workers)
    figures = loadgen.run_case(case, connections=args.connections, seconds=args.seconds)
    cpu_ms = (sum(sum(p.cpu_times()[:2]) for p in workers) - cpu_before) * 1000
    _, err = spy.communicate(timeout=args.seconds + 60)
    if spy.returncode != 0:
        raise RuntimeError(f"py-spy failed: {err[-2000:]}")
    result = breakdown(parse_raw(raw))
    with raw.open("rb") as src, gzip.open(f"{raw}.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    raw.unlink()
    raw = raw.with_name(raw.name + ".gz")
    result.update(
        case=case.label,
        rps_under_profiler=figures["rps"],
        requests=figures["requests"],
        non_2xx=figures["non_2xx"],
        worker_cpu_ms_per_request=round(cpu_ms / max(1, figures["requests"]), 3),
        worker_wall_ms_per_request=round(
            1000 * result["busy_samples"] / args.rate / max(1, figures["requests"]), 3
        ),
        raw_stacks=str(raw.relative_to(BENCH_DIR.parent)),
    )
    return result


def print_profile(result: dict) -> None:
    wall = result["worker_wall_ms_per_request"]
    print(
        f"\n== {result['case']}: {result['rps_under_profiler']} req/s under the profiler; per "
        f"request {wall} ms of worker time, {result['worker_cpu_ms_per_request']} ms of CPU"
    )
    print("  where a worker's time goes (exclusive, adds up to 100 %):")
    for label, pct in result["exclusive_pct"].items():
        print(f"    {label:<48} {pct:>5.1f} %  {wall * pct / 100:6.3f} ms")
    print("  key functions (inclusive of what they call):")
    for label, pct in result["inclusive_pct"].items():
        print(f"    {label:<48} {pct:>5.1f} %  {wall * pct / 100:6.3f} ms")
    top = ", ".join(f"{k} {v}%" for k, v in result["self_pct_by_package"].items())
    print(f"  self time by package: {top}")


def profile_server(services_env: dict, args, tmp_root: Path, out_dir: Path) -> list[dict]:
    """Prepare and start one mlapi configuration, profile cases a and b, stop it."""
    env = servers.mlapi_env(tmp_root / "data", services=services_env)
    info = servers.prepare_mlapi(env)
    server = servers.start_mlapi(env, tmp_root, workers=args.workers, with_worker=False)
    try:
        cases = run.metered_cases(server.base_url, info["api_key"], extra=False)
        for case in cases:
            run.preflight(case)
            loadgen.run_case(case, connections=args.connections, seconds=3)  # warm up
        return [profile_case(case, server, args, out_dir) for case in cases]
    finally:
        server.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=int, default=199, help="py-spy samples per second")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--nice", type=int, default=0, help="niceness of the bench and servers")
    parser.add_argument(
        "--services", action="store_true", help="PostgreSQL + Redis from DATABASE_URL/REDIS_URL"
    )
    args = parser.parse_args(argv)
    loadgen.find_wrk()
    servers.stop_cleanly_on_signals()
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    config = "services" if args.services else "embedded"
    out_dir = BENCH_DIR / "results" / f"profile-{config}-{stamp}"
    out_dir.mkdir(parents=True)
    tmp_root = Path(tempfile.mkdtemp(prefix="mlapi-profile-"))
    try:
        with contextlib.ExitStack() as stack:
            services_env = {}
            if args.services:
                services_env = {
                    "DATABASE_URL": stack.enter_context(
                        servers.fresh_postgres_database(os.environ["DATABASE_URL"])
                    ),
                    "REDIS_URL": os.environ["REDIS_URL"],
                }
            results = profile_server(services_env, args, tmp_root, out_dir)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    for result in results:
        print_profile(result)
    (out_dir / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nraw stacks and summary in {out_dir.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
