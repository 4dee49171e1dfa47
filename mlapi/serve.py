"""`make run`: gunicorn and a Celery worker (with its beat scheduler) in the foreground.

SIGINT or SIGTERM stops both cleanly: gunicorn finishes in-flight requests, the worker finishes
its current chunk. If either child dies, the other is stopped and the exit code is passed on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _children_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "mlapi.settings")
    metrics_dir = tempfile.mkdtemp(prefix="mlapi-metrics-")
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
    return env


def main() -> int:
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    workers = os.environ.get("WEB_CONCURRENCY", "2")
    python = sys.executable
    env = _children_env()
    data_dir = os.environ.get("MLAPI_DATA_DIR") or str(BASE_DIR / "var")
    web = subprocess.Popen(
        [
            python,
            "-m",
            "gunicorn",
            "mlapi.wsgi:application",
            "-c",
            str(BASE_DIR / "mlapi/gunicorn_conf.py"),
            "--bind",
            f"{host}:{port}",
            "--workers",
            workers,
        ],
        cwd=BASE_DIR,
        env=env,
    )
    worker = subprocess.Popen(
        [
            python,
            "-m",
            "celery",
            "-A",
            "mlapi",
            "worker",
            "--beat",
            "--loglevel",
            "INFO",
            "--concurrency",
            os.environ.get("MLAPI_WORKER_CONCURRENCY", "1"),
            "--schedule",
            str(Path(data_dir) / "celerybeat-schedule"),
        ],
        cwd=BASE_DIR,
        env=env,
    )
    children = [web, worker]
    base = f"http://{host}:{port}"
    print(
        f"\nmlapi is starting on {base}\n"
        f"  portal:   {base}/portal/\n"
        f"  admin:    {base}/admin/\n"
        f"  API docs: {base}/api/docs/   (Redoc: {base}/api/redoc/)\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while any(child.poll() is None for child in children):
        for child in children:
            if child.poll() is not None and not stopping:
                code = child.returncode or 1
                stop(signal.SIGTERM, None)
        time.sleep(0.2)
    return code if not stopping else 0


if __name__ == "__main__":
    sys.exit(main())
