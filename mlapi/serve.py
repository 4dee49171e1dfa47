"""`make run`: gunicorn, a Celery worker and the beat scheduler in the foreground.

`python -m mlapi.serve` runs all three; `python -m mlapi.serve web`, `... worker` or `... beat`
runs one role (the container image uses the roles, so what CI proves is what the image runs).
Beat is a role of its own because a deployment must run exactly one (it schedules housekeeping
for everyone), while workers scale out; it also keeps the scheduler out of every worker's RSS.
SIGINT or SIGTERM stops both cleanly: gunicorn finishes in-flight requests, the worker finishes
its current chunk. If either child dies, the other is stopped and its exit code is passed on.
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
ROLES = ("web", "worker", "beat")


def _children_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "mlapi.settings")
    # prometheus_client's multiprocess mode, so /metrics adds up across gunicorn workers.
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="mlapi-metrics-"))
    return env


def _web_command() -> list[str]:
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    return [
        sys.executable, "-m", "gunicorn", "mlapi.wsgi:application",
        "-c", str(BASE_DIR / "mlapi" / "gunicorn_conf.py"),
        "--bind", f"{host}:{port}",
        "--workers", os.environ.get("WEB_CONCURRENCY", "2"),
    ]  # fmt: skip


def _worker_command() -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "mlapi", "worker",
        "--loglevel", os.environ.get("MLAPI_LOG_LEVEL", "INFO"),
        "--concurrency", os.environ.get("MLAPI_WORKER_CONCURRENCY", "1"),
    ]  # fmt: skip


def _beat_command() -> list[str]:
    data_dir = Path(os.environ.get("MLAPI_DATA_DIR") or BASE_DIR / "var")
    return [
        sys.executable, "-m", "celery", "-A", "mlapi", "beat",
        "--loglevel", os.environ.get("MLAPI_LOG_LEVEL", "INFO"),
        "--schedule", str(data_dir / "celerybeat-schedule"),
    ]  # fmt: skip


def _print_urls() -> None:
    base = f"http://{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
    print(
        f"\nmlapi is starting on {base}\n"
        f"  portal:   {base}/portal/\n"
        f"  admin:    {base}/admin/\n"
        f"  API docs: {base}/api/docs/   (Redoc: {base}/api/redoc/)\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )


def _supervise(children: list[subprocess.Popen]) -> int:
    """Wait for the children; on a signal, or when one dies, stop them all."""
    stopping = False
    code = 0

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while any(child.poll() is None for child in children):
        for child in children:
            if child.poll() is not None and not stopping:
                code = child.returncode or 1
                stop(signal.SIGTERM, None)
        time.sleep(0.2)
    return code


def main(roles: list[str]) -> int:
    env = _children_env()
    commands = {"web": _web_command, "worker": _worker_command, "beat": _beat_command}
    children = [subprocess.Popen(commands[role](), cwd=BASE_DIR, env=env) for role in roles]
    if "web" in roles:
        _print_urls()
    return _supervise(children)


if __name__ == "__main__":
    requested = sys.argv[1:] or list(ROLES)
    unknown = set(requested) - set(ROLES)
    if unknown:
        sys.exit(f"unknown role(s): {', '.join(sorted(unknown))}; use web, worker and/or beat")
    sys.exit(main(requested))
