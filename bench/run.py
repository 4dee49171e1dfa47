"""`make bench`: metered predict vs the same server's floor vs the seed-001 baseline, with wrk.

For each configuration ("embedded": SQLite + diskcache + embedded broker, as `make run`; and
"services": PostgreSQL + Redis, on a private cluster and redis-server the bench starts, or on
DATABASE_URL/REDIS_URL with `--services urls`, in a fresh database with the emulated 5 ms WAL
flush, `--commit-delay-us`) it:
1. makes a fresh temp data dir, migrates, collects static files, runs `bootstrap_demo`, and
   provisions a subscriber on a plan whose limits never interfere (bench/provision.py);
2. starts mlapi in production mode (DJANGO_DEBUG=0, generated secret, ALLOWED_HOSTS,
   MLAPI_SSL_REDIRECT=0) the way `make run` does (mlapi.serve: gunicorn with
   mlapi/gunicorn_conf.py plus the Celery worker), on a free port;
3. measures, in alternating order for each round and connection count:
   a) POST /api/v1/models/iris/predict with X-API-Key (one instance): the metered path;
   b) GET /healthz on the same server: the floor;
   c) POST /predict on the seed-001 baseline (bench/baseline_app.py, 2 uvicorn workers);
4. reads one web worker's RSS after both demo models have served requests.
For the services layout it also counts WAL flushes (pg_stat_wal) per metered request.
It prints the medians, ratios a/b and a/c and issues 7's and 12's goals, and writes everything to
bench/results/bench-<UTC time>.json.

Usage: .venv/bin/python bench/run.py [--rounds 2] [--seconds 10] [--connections 1,16,64]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from bench import cpu, loadgen, report, servers, stores  # noqa: E402

IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
HOUSE_ROW = {"property_type": "S", "old_new": "N", "duration": "F"}
JSON = {"Content-Type": "application/json"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (>= 2)")
    parser.add_argument("--seconds", type=float, default=10, help="duration of each run")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per case")
    parser.add_argument("--connections", default="1,16,64", help="comma-separated")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", 2)))
    parser.add_argument("--web-only", action="store_true", help="gunicorn without Celery")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--extra-cases", action="store_true", help="also V2 infer, house-price")
    parser.add_argument("--configs", default="embedded,services", help="embedded,services")
    parser.add_argument(
        "--services",
        choices=["auto", "private", "urls"],
        default="auto",
        help="services layout on a private PostgreSQL cluster + redis-server (clean pg_stat_wal), "
        "or on DATABASE_URL/REDIS_URL; auto: private when the binaries exist",
    )
    parser.add_argument(
        "--commit-delay-us",
        type=int,
        default=5000,
        help="emulated WAL flush of the services database (commit_delay; 0: the disk's own)",
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the temp data dirs")
    parser.add_argument(
        "--quiet-wait", type=float, default=20, help="max s to wait for other load to settle"
    )
    parser.add_argument(
        "--quiet-limit", type=float, default=0.25, help="other processes' CPU (cores) = quiet"
    )
    parser.add_argument("--out", default="", help="JSON output path")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the bench and every server it starts at this niceness (e.g. -10 as root, so "
        "other work on a shared machine disturbs the figures less)",
    )
    return parser.parse_args(argv)


def metered_cases(base: str, api_key: str, extra: bool) -> list[loadgen.Case]:
    """Cases a and b (and the optional extras) on one mlapi server."""
    auth = {**JSON, "X-API-Key": api_key}
    cases = [
        loadgen.Case(
            "a",
            "metered iris predict (1 row)",
            "POST",
            f"{base}/api/v1/models/iris/predict",
            json.dumps({"instances": [IRIS_ROW]}).encode(),
            auth,
        ),
        loadgen.Case("b", "floor: GET /healthz", "GET", f"{base}/healthz"),
    ]
    if extra:
        v2_body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                               "data": list(IRIS_ROW.values())}]}  # fmt: skip
        cases += [
            loadgen.Case(
                "d",
                "V2 infer iris (1 row)",
                "POST",
                f"{base}/v2/models/iris/infer",
                json.dumps(v2_body).encode(),
                auth,
            ),
            loadgen.Case(
                "e",
                "metered house-price (5 rows)",
                "POST",
                f"{base}/api/v1/models/house-price/predict",
                json.dumps({"instances": [HOUSE_ROW] * 5}).encode(),
                auth,
            ),
        ]
    return cases


def baseline_case(server: servers.Server) -> loadgen.Case:
    headers = {**JSON, "Authorization": f"Bearer {server.extra['token']}"}
    body = json.dumps({"data": list(IRIS_ROW.values())}).encode()
    return loadgen.Case(
        "c", "seed-001 baseline predict", "POST", f"{server.base_url}/predict", body, headers
    )


def preflight(case: loadgen.Case) -> None:
    """One request per case before any load: a case that does not answer 2xx stops the bench."""
    status, body = servers.http(case.method, case.url, case.body or None, case.headers)
    if not 200 <= status < 300:
        raise SystemExit(f"case {case.key} ({case.url}) answered {status}: {body}")


def load_both_models(base: str, api_key: str) -> None:
    """Make every web worker load both demo models before RSS is read (16 connections, 2 s)."""
    cases = metered_cases(base, api_key, extra=True)
    for case in (c for c in cases if c.key in {"a", "e"}):
        loadgen.run_case(case, connections=16, seconds=2)


def measure(
    cases: list[loadgen.Case],
    args: argparse.Namespace,
    config: str,
    our_pids: list[int],
    wal=None,
) -> list[dict]:
    """Alternate the cases (reversed every other round) at each connection count.

    Before each run the bench waits (bounded) for other processes to go quiet, and it records
    the CPU they used during the run anyway (`other_cpu_cores`).
    """
    for case in cases:
        loadgen.run_case(case, connections=16, seconds=args.warmup)
    runs = []
    for round_no in range(1, args.rounds + 1):
        for connections in [int(c) for c in args.connections.split(",")]:
            order = cases if round_no % 2 else list(reversed(cases))
            for case in order:
                cpu.wait_for_quiet(our_pids, limit=args.quiet_limit, max_wait=args.quiet_wait)
                meter = cpu.CpuMeter(our_pids)
                syncs = wal() if wal else 0
                figures = loadgen.run_case(case, connections=connections, seconds=args.seconds)
                figures["other_cpu_cores"] = meter.stop()
                if wal:  # lags: backends report WAL statistics lazily (the total is exact)
                    figures["wal_syncs_during_run"] = wal() - syncs
                figures.update(round=round_no, case=case.key, label=case.label)
                runs.append(figures)
                print(
                    f"[{config}] round {round_no} c={connections:<3} {case.key}) "
                    f"{figures['rps']:>8.1f} req/s  p50 {figures['p50_ms']:.2f} ms  "
                    f"p99 {figures['p99_ms']:.2f} ms  non-2xx {figures['non_2xx']}  "
                    + (f"WAL syncs {figures['wal_syncs_during_run']}  " if wal else "")
                    + f"other CPU {figures['other_cpu_cores']:.2f} cores",
                    flush=True,
                )
    return runs


def run_config(
    config: str, services_env: dict, baseline, args, tmp_root: Path, layout: dict | None = None
) -> dict:
    """Prepare, start and measure one mlapi configuration; always stops its server."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"{config}-", dir=tmp_root))
    env = servers.mlapi_env(data_dir, services=services_env)
    print(f"[{config}] preparing {data_dir} (migrate, bootstrap_demo, provision)", flush=True)
    info = servers.prepare_mlapi(env)
    server = servers.start_mlapi(env, tmp_root, workers=args.workers, with_worker=not args.web_only)
    try:
        cases = metered_cases(server.base_url, info["api_key"], args.extra_cases)
        if baseline:
            cases.append(baseline_case(baseline))
        for case in cases:
            preflight(case)
        our_pids = [server.proc.pid] + ([baseline.proc.pid] if baseline else [])
        syncs_before = stores.wal_syncs(layout["wal_url"]) if layout else None
        wal = (lambda: stores.wal_syncs(layout["wal_url"])) if layout else None
        runs = measure(cases, args, config, our_pids, wal)
        wal = wal_per_request(layout, syncs_before, runs)
        load_both_models(server.base_url, info["api_key"])
        memory = [servers.memory_mb(pid) for pid in server.web_worker_pids()]
    finally:
        server.stop()
    summary = report.summarise(runs)
    worker_rss = max((m["rss"] for m in memory), default=None)
    description = (
        layout["where"] if layout else "SQLite + diskcache + embedded broker (make run defaults)"
    )
    return {
        "config": config,
        "description": description,
        "workers": args.workers,
        "celery_worker": not args.web_only,
        "runs": runs,
        "summary": summary,
        "worker_rss_mb": worker_rss,
        "worker_memory_mb": memory,
        "wal": wal,
        "goals": report.check_goals(summary, worker_rss, wal),
    }


def wal_per_request(layout: dict | None, before: int | None, runs: list[dict]) -> dict | None:
    """WAL flushes (pg_stat_wal.wal_sync) over every round, per metered request (case a).

    Read after an 11 s pause: backends report their WAL statistics lazily (idle ones within
    10 s). The floor writes nothing, so every flush of the window is the metered path's or a
    background writer's (usage records, Celery beat, autovacuum): all counted.
    """
    if layout is None:
        return None
    time.sleep(11)
    syncs = stores.wal_syncs(layout["wal_url"]) - before
    metered = sum(r["requests"] for r in runs if r["case"] == "a")
    return {
        "syncs": syncs,
        "metered_requests": metered,
        "per_request": round(syncs / metered, 4) if metered else None,
    }


def environment_info(args: argparse.Namespace) -> dict:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BENCH_DIR
    ).stdout.strip()
    wrk_version = subprocess.run([loadgen.find_wrk(), "-v"], capture_output=True, text=True)
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "wrk": (wrk_version.stdout or wrk_version.stderr).splitlines()[0],
        "rounds": args.rounds,
        "seconds_per_run": args.seconds,
        "connections": args.connections,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "niceness": os.getpriority(os.PRIO_PROCESS, 0),
        "gunicorn_cmd_args": os.environ.get("GUNICORN_CMD_ARGS", ""),
    }


def services_mode(args: argparse.Namespace) -> str | None:
    """How to run the services layout: "private", "urls", or None (cannot)."""
    have_urls = all(os.environ.get(k) for k in ("DATABASE_URL", "REDIS_URL"))
    private = stores.postgres_available() and stores.redis_available()
    if args.services == "private" or (args.services == "auto" and private):
        return "private" if private else None
    return "urls" if have_urls else None


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    loadgen.find_wrk()
    servers.stop_cleanly_on_signals()
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # servers and wrk get it too
    tmp_root = Path(tempfile.mkdtemp(prefix="mlapi-bench-"))
    result = {"environment": environment_info(args), "configs": []}
    baseline = None
    try:
        if not args.skip_baseline:
            baseline = servers.start_baseline(tmp_root)
        for config in [c for c in args.configs.split(",") if c]:
            started = time.monotonic()
            with contextlib.ExitStack() as stack:
                layout = None
                if config == "services":
                    mode = services_mode(args)
                    if mode is None:
                        print("[services] skipped: no PostgreSQL/Redis (binaries or URLs)")
                        continue
                    layout = stack.enter_context(
                        stores.services_layout(mode=mode, delay_us=args.commit_delay_us)
                    )
                env = layout["env"] if layout else {}
                outcome = run_config(config, env, baseline, args, tmp_root, layout)
            outcome["wall_seconds"] = round(time.monotonic() - started, 1)
            result["configs"].append(outcome)
    finally:
        if baseline:
            baseline.stop()
        if not args.keep_data:
            shutil.rmtree(tmp_root, ignore_errors=True)
        else:
            print(f"data and logs kept in {tmp_root}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else BENCH_DIR / "results" / f"bench-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    for outcome in result["configs"]:
        print(report.format_table(outcome))
        print()
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
