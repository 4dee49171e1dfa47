"""Batch-job benchmark: rows/s end to end for a large Iris CSV on 1..N workers, and their RSS.

    .venv/bin/python bench/batch_jobs.py [--rows 1000000] [--workers 1 2] [--storage local|s3]
                                         [--broker URL] [--latency N] [--repeat 3]

Runs in a fresh data dir (SQLite database, embedded broker unless --broker or
CELERY_BROKER_URL), with `celery worker --pool solo` subprocesses, the way `make run` runs
them. `--storage s3` keeps every object in moto's S3 server (started here on a free port).
For each worker count in --workers, fresh workers are started and the same job is run
--repeat times; the median is reported, and the ratio against the first worker count.
"End to end" is from the POST of the upload (through the real view, in this process) to
the job being `succeeded` with its results written; "run" is started_at -> finished_at.
Peak RSS is each worker's VmHWM from /proc (the kernel's own high-water mark, so no spike is
missed between samples); idle RSS is a booted worker's VmRSS before it ran anything.
`--latency N` also submits N one-row jobs one after another and reports submit -> picked
up (started_at) and submit -> finished. Targets: >= 100,000 rows/s on one worker, two workers
>= 1.6x one, peak <= 300 MB, idle <= 200 MB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
IRIS = [(5.1, 3.5, 1.4, 0.2), (7.0, 3.2, 4.7, 1.4), (6.3, 3.3, 6.0, 2.5), (5.9, 3.0, 5.1, 1.8)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--broker", default=os.environ.get("CELERY_BROKER_URL", ""))
    parser.add_argument("--latency", type=int, default=0, help="one-row jobs to time")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--storage", choices=["local", "s3"], default="local")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", default="", help="default: a new temporary directory")
    parser.add_argument(
        "--concurrency",
        action="store_true",
        help="instead: 2 workers, 4 submitting processes x 25 one-row jobs; count deliveries",
    )
    return parser.parse_args()


def configure(args: argparse.Namespace) -> tuple[Path, object]:
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="mlapi-bench-jobs-"))
    os.environ.update(MLAPI_DATA_DIR=str(data_dir), DJANGO_DEBUG="1", MLAPI_LOG_LEVEL="WARNING")
    os.environ.update(MLAPI_MAX_UPLOAD_BYTES=str(2**31), MLAPI_USAGE_RECORDING="0")
    sys.path.insert(0, str(BASE_DIR))
    moto = None
    if args.storage == "s3":
        from tests.support.objectstore import MotoServer, storage_env

        moto = MotoServer()
        moto.client().create_bucket(Bucket="bench")
        os.environ.update(storage_env(moto.endpoint, "s3://bench/mlapi"))
        os.environ["MLAPI_OBJECT_STORAGE_READ_TIMEOUT_S"] = "60"
    os.environ.pop("DATABASE_URL", None)
    if args.broker:
        os.environ["CELERY_BROKER_URL"] = args.broker
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapi.settings")
    import django

    django.setup()
    return data_dir, moto


def provision() -> str:
    """Migrate, register the demo models, and return an API key on an unlimited plan."""
    from django.core.management import call_command

    from bench.provision import provision as provision_subscriber

    call_command("migrate", verbosity=0)
    call_command("bootstrap_demo", verbosity=0)
    return provision_subscriber("bench-jobs", "bench")["api_key"]


def write_csv(path: Path, rows: int) -> int:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width"])
        block = [IRIS[i % 4] for i in range(1000)]
        for start in range(0, rows, 1000):
            writer.writerows(block[: min(1000, rows - start)])
    return path.stat().st_size


def start_worker(data_dir: Path, name: str = "worker") -> tuple[subprocess.Popen, Path]:
    log = data_dir / f"{name}.log"
    command = [
        sys.executable, "-m", "celery", "-A", "mlapi", "worker", "--pool", "solo",
        "--hostname", f"{name}@%h",
        "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "INFO",
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=BASE_DIR, stdout=out, stderr=subprocess.STDOUT)
    return process, log


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """The process's peak (VmHWM) or current (VmRSS) resident set, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def submit(client, key: str, path: Path) -> str:
    with path.open("rb") as handle:
        response = client.post(
            "/api/v1/jobs", {"model": "iris", "file": handle}, HTTP_X_API_KEY=key
        )
    assert response.status_code == 202, response.content[:500]
    return response.json()["id"]


def wait_done(job_id: str, timeout: float = 600.0):
    from predictions.models import BatchJob

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = BatchJob.objects.get(pk=job_id)
        if job.is_finished:
            return job
        time.sleep(0.01)
    raise TimeoutError(f"job {job_id} did not finish in {timeout}s")


def measure_latency(client, key: str, data_dir: Path, count: int) -> dict:
    """Submit `count` one-row jobs in turn: submit -> started_at, submit -> finished."""
    from predictions.models import BatchJob

    path = data_dir / "one.csv"
    write_csv(path, 1)
    pickup, total = [], []
    for _ in range(count):
        started = time.time()
        job_id = submit(client, key, path)
        wait_done(job_id, 60)
        total.append(time.time() - started)
        job = BatchJob.objects.get(pk=job_id)
        pickup.append(job.started_at.timestamp() - started)
    ms = lambda values: round(statistics.median(values) * 1000, 1)  # noqa: E731
    return {
        "jobs": count,
        "pickup_ms_p50": ms(pickup),
        "pickup_ms_max": round(max(pickup) * 1000, 1),
        "finished_ms_p50": ms(total),
    }


def _submitter(key: str, path: str, count: int) -> list[str]:
    from django.db import connections
    from django.test import Client

    connections.close_all()  # a forked child opens its own
    client = Client()
    return [submit(client, key, Path(path)) for _ in range(count)]


def measure_concurrency(key: str, data_dir: Path, submitters: int = 4, each: int = 25) -> dict:
    """Two workers, several submitting processes: is every job run, and run once?"""
    import multiprocessing
    import re
    from collections import Counter

    from django.db import connections

    path = data_dir / "one.csv"
    write_csv(path, 1)
    workers = [start_worker(data_dir, f"w{i}") for i in range(2)]
    time.sleep(8)
    connections.close_all()
    started = time.time()
    with multiprocessing.get_context("fork").Pool(submitters) as pool:
        batches = pool.starmap(_submitter, [(key, str(path), each)] * submitters)
    job_ids = [job_id for batch in batches for job_id in batch]
    finished = [wait_done(job_id, 120) for job_id in job_ids]
    elapsed = time.time() - started
    for process, _ in workers:
        process.terminate()
        process.wait(30)
    received = Counter()
    for _, log in workers:
        received.update(re.findall(r"run_batch_job\[([0-9a-f-]+)\] received", log.read_text()))
    return {
        "jobs": len(job_ids),
        "succeeded": sum(job.status == "succeeded" for job in finished),
        "messages_received": sum(received.values()),
        "messages_received_twice": sum(1 for n in received.values() if n > 1),
        "seconds": round(elapsed, 2),
    }


def count_result_rows(job) -> int:
    from predictions import storage

    lines = 0
    for block in storage.iter_read(storage.open_read(job.results_path)):
        lines += block.count(b"\n")
    return lines - 1


def run_once(client, key: str, source: Path, workers: list) -> dict:
    cpu_before = sum(cpu_seconds(w.pid) for w, _ in workers)
    started = time.time()
    job_id = submit(client, key, source)
    submitted = time.time()
    job = wait_done(job_id, timeout=3600)
    finished = time.time()
    cpu = sum(cpu_seconds(w.pid) for w, _ in workers) - cpu_before
    assert job.status == "succeeded", (job.status, job.error)
    return {
        "submit_s": submitted - started,
        "run_s": (job.finished_at - job.started_at).total_seconds(),
        "end_to_end_s": finished - started,
        "worker_cpu_s": cpu,
        "job": job,
    }


def bench_workers(client, key: str, source: Path, data_dir: Path, n: int, args) -> dict:
    """Start n fresh workers, run the job --repeat times, report medians and RSS."""
    workers = [start_worker(data_dir, f"bench{n}-{i}") for i in range(n)]
    try:
        time.sleep(6)  # let the workers boot before the clock starts
        idle = [rss_mb(w.pid, "VmRSS") for w, _ in workers]
        latency = measure_latency(client, key, data_dir, args.latency) if args.latency else None
        runs = [run_once(client, key, source, workers) for _ in range(args.repeat)]
        peak = [rss_mb(w.pid) for w, _ in workers]
    finally:
        for process, _ in workers:
            process.terminate()
            process.wait(30)
    lines = count_result_rows(runs[-1]["job"])
    assert lines == args.rows, (lines, args.rows)
    med = {k: statistics.median(r[k] for r in runs) for k in ("submit_s", "run_s", "end_to_end_s")}
    cpu = statistics.median(r["worker_cpu_s"] for r in runs)
    return {
        "workers": n,
        "runs": args.repeat,
        "submit_s": round(med["submit_s"], 2),
        "run_s": round(med["run_s"], 2),
        "end_to_end_s": round(med["end_to_end_s"], 2),
        "end_to_end_s_all": [round(r["end_to_end_s"], 2) for r in runs],
        "rows_per_s": round(args.rows / med["end_to_end_s"]),
        "run_rows_per_s": round(args.rows / med["run_s"]),
        "rows_per_worker_cpu_s": round(args.rows / cpu) if cpu else None,
        "worker_idle_rss_mb": [round(v, 1) for v in idle],
        "worker_peak_rss_mb": [round(v, 1) for v in peak],
        "latency": latency,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }


def main() -> int:
    args = parse_args()
    data_dir, moto = configure(args)
    try:
        if args.concurrency:
            from django.conf import settings

            report = measure_concurrency(provision(), data_dir)
            report["broker"] = settings.CELERY_BROKER_URL.split("://")[0]
            print(json.dumps(report, indent=2))
            return 0
        from django.conf import settings
        from django.test import Client

        key = provision()
        source = data_dir / "iris-bench.csv"
        size = write_csv(source, args.rows)
        load_before = [round(v, 2) for v in os.getloadavg()]
        results = [bench_workers(Client(), key, source, data_dir, n, args) for n in args.workers]
        base = results[0]
        for result in results:
            result["speedup_end_to_end"] = round(base["end_to_end_s"] / result["end_to_end_s"], 2)
            result["speedup_run"] = round(base["run_s"] / result["run_s"], 2)
        report = {
            "rows": args.rows,
            "file_mb": round(size / 2**20, 1),
            "storage": args.storage,
            "broker": settings.CELERY_BROKER_URL.split("://")[0],
            "chunk_rows": settings.MLAPI_JOB_CHUNK_ROWS,
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "results": results,
            "targets": {
                "rows_per_s_one_worker": 100_000,
                "two_workers_speedup": 1.6,
                "worker_peak_rss_mb": 300,
                "worker_idle_rss_mb": 200,
            },
        }
        print(json.dumps(report, indent=2))
        return 0
    finally:
        if moto is not None:
            moto.stop()


if __name__ == "__main__":
    sys.exit(main())
