"""`make run`: a small supervisor for gunicorn, Celery (worker, beat) and gRPC, in the foreground.

`python -m mlapi.serve` runs every default role: web, worker, beat and grpc (the gRPC data plane
on MLAPI_GRPC_PORT); `python -m mlapi.serve web`, `... worker`, `... beat` or `... grpc` runs
some (the container image runs one role per container, so what CI proves is what the image
runs). Each role is one `Role` in `ROLES`: adding a process is one line there. Beat is a role of
its own because a deployment must run exactly one (it schedules housekeeping for everyone)
while workers scale out; it also keeps the scheduler out of every worker's RSS.

A child that dies is logged and started again after a backoff (1 s, doubling up to 30 s while it
keeps dying within `MLAPI_SUPERVISOR_MIN_UPTIME_S` of its start; back to 1 s once it ran longer).
A role that keeps crashing like that is reported as crash-looping on every attempt, and the other
roles keep serving: an OOM-killed worker never takes the API down. Each child runs in its own
process group, and whatever it leaves behind (a SIGKILLed gunicorn master's workers) is killed
before it is started again. SIGINT or SIGTERM stops everything cleanly: gunicorn finishes
in-flight requests, the worker its current chunk; exit code 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S = 45.0  # gunicorn's graceful_timeout (30 s) plus start-up slack
BACKOFF_MAX_S = 30.0


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


def _log(message: str) -> None:
    print(f"mlapi.serve: {message}", file=sys.stderr, flush=True)


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


def worker_node_name() -> str:
    """A Celery node name unique on this host (Celery's default, celery@host, clashes when
    several nodes or workers share one broker): `MLAPI_WORKER_NAME`, else worker-<pid>@<host>,
    the pid being this supervisor's (a restarted worker reuses its dead predecessor's name)."""
    return os.environ.get("MLAPI_WORKER_NAME") or f"worker-{os.getpid()}@{socket.gethostname()}"


def worker_queues() -> str:
    """Queues the worker consumes: `MLAPI_WORKER_QUEUES` (comma-separated), else Celery's
    default queue plus `MLAPI_JOB_QUEUE` when jobs are sent elsewhere ("" = Celery's default)."""
    job_queue = os.environ.get("MLAPI_JOB_QUEUE", "")
    return os.environ.get("MLAPI_WORKER_QUEUES") or (f"celery,{job_queue}" if job_queue else "")


def _worker_command() -> list[str]:
    queues = worker_queues()
    return [
        sys.executable, "-m", "celery", "-A", "mlapi", "worker",
        "-n", worker_node_name(),
        "--loglevel", os.environ.get("MLAPI_LOG_LEVEL", "INFO"),
        "--concurrency", os.environ.get("MLAPI_WORKER_CONCURRENCY", "1"),
        *(["-Q", queues] if queues else []),
    ]  # fmt: skip


def _beat_command() -> list[str]:
    data_dir = Path(os.environ.get("MLAPI_DATA_DIR") or BASE_DIR / "var")
    return [
        sys.executable, "-m", "celery", "-A", "mlapi", "beat",
        "--loglevel", os.environ.get("MLAPI_LOG_LEVEL", "INFO"),
        "--schedule", str(data_dir / "celerybeat-schedule"),
    ]  # fmt: skip


def _grpc_command() -> list[str]:
    """The gRPC data plane (predictions.grpc): its own process, so nothing forks after gRPC."""
    return [sys.executable, "-m", "predictions.grpc"]


def grpc_processes() -> int:
    """How many gRPC server processes share MLAPI_GRPC_PORT (`MLAPI_GRPC_PROCESSES`, default
    WEB_CONCURRENCY like gunicorn's workers). One Python process is bound by its interpreter
    lock to about one core; measured on 2 cores (bench/grpc_vs_rest.py), two processes answer
    1.3x the single-row calls of one."""
    return max(1, int(_env_float("MLAPI_GRPC_PROCESSES", _env_float("WEB_CONCURRENCY", 2))))


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on host:port (a bind without SO_REUSEPORT succeeds)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Role:
    """One kind of child process: its name, how to build its command line, whether
    `python -m mlapi.serve` without arguments starts it."""

    name: str
    command: Callable[[], list[str]]
    default: bool = True
    copies: Callable[[], int] = lambda: 1
    env: Callable[[int], dict[str, str]] = lambda copies: {}


# One line per role. Iterating ROLES gives the role names (compose.yaml has a service for each).
ROLES: dict[str, Role] = {
    "web": Role("web", _web_command),
    "worker": Role("worker", _worker_command),
    "beat": Role("beat", _beat_command),
    # Several gRPC processes share the port through SO_REUSEPORT (the kernel spreads
    # connections); a lone one keeps the port exclusive.
    "grpc": Role(
        "grpc",
        _grpc_command,
        copies=grpc_processes,
        env=lambda copies: {"MLAPI_GRPC_REUSEPORT": "1"} if copies > 1 else {},
    ),
}


@dataclass
class Child:
    """A supervised process of one role, with its crash bookkeeping."""

    role: Role
    env: dict[str, str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    fast_crashes: int = 0
    restart_at: float | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        # Own process group: a terminal's Ctrl-C reaches only the supervisor, which stops the
        # children in order, and leftovers of a dead child can be found and killed.
        self.process = subprocess.Popen(
            self.role.command(), cwd=BASE_DIR, env=self.env, start_new_session=True
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        _log(f"started {self.role.name} (pid {self.process.pid})")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill_leftovers(self) -> None:
        """SIGKILL what the dead child's process group still holds (e.g. orphaned workers)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def note_exit(self, min_uptime: float) -> None:
        """Log the death, kill leftovers and schedule the restart with backoff."""
        assert self.process is not None
        code = self.process.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        uptime = time.monotonic() - self.started_at
        self.kill_leftovers()
        self.fast_crashes = self.fast_crashes + 1 if uptime < min_uptime else 0
        delay = min(BACKOFF_MAX_S, 2.0 ** max(0, self.fast_crashes - 1))
        self.restart_at = time.monotonic() + delay
        self.restarts += 1
        _log(
            f"{self.role.name} (pid {self.process.pid}) {how} after {uptime:.1f} s; "
            f"restarting in {delay:.0f} s (restart #{self.restarts})"
        )
        if self.fast_crashes >= 3:
            _log(
                f"ERROR: {self.role.name} is crash-looping: {self.fast_crashes} crashes in a row, "
                f"each within {min_uptime:.0f} s of starting; see its output above "
                f"(the other roles keep running; retrying every {delay:.0f} s at most)"
            )

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)


def _print_urls() -> None:
    base = f"http://{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
    print(
        f"\nmlapi is starting on {base}\n"
        f"  portal:   {base}/portal/\n"
        f"  admin:    {base}/admin/\n"
        f"  API docs: {base}/api/docs/   (Redoc: {base}/api/redoc/)\n"
        f"  gRPC:     {os.environ.get('HOST', '127.0.0.1')}:"
        f"{os.environ.get('MLAPI_GRPC_PORT', '8001')} (Open Inference Protocol)\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )


def _stop_all(children: list[Child]) -> None:
    """SIGTERM every child, wait for the graceful stops, then SIGKILL whatever hangs."""
    for child in children:
        child.stop()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _log(f"{child.role.name} did not stop in time; killing it")
        child.kill_leftovers()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=5)


def supervise(children: list[Child]) -> int:
    """Keep the children running until SIGINT or SIGTERM; then stop them all (exit 0)."""
    stopping: list[int] = []
    min_uptime = _env_float("MLAPI_SUPERVISOR_MIN_UPTIME_S", 10.0)
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    for child in children:
        child.start()
    while not stopping:
        now = time.monotonic()
        for child in children:
            if child.restart_at is not None:
                if now >= child.restart_at and not stopping:
                    child.start()
            elif not child.alive():
                child.note_exit(min_uptime)
        time.sleep(0.2)
    _log(f"{signal.Signals(stopping[0]).name} received; stopping")
    _stop_all(children)
    return 0


def _shared_port_taken(role_names: list[str]) -> str:
    """Why the gRPC copies must not start: with SO_REUSEPORT they would silently share the
    port with whatever already listens there (an older `make run`, say)."""
    if "grpc" not in role_names or grpc_processes() == 1:
        return ""
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("MLAPI_GRPC_PORT") or 8001)
    if port_is_free(host, port):
        return ""
    return f"the gRPC port {host}:{port} is already in use (set MLAPI_GRPC_PORT)"


def main(role_names: list[str]) -> int:
    env = _children_env()
    taken = _shared_port_taken(role_names)
    if taken:
        _log(f"ERROR: {taken}")
        return 1
    children = []
    for name in role_names:
        role = ROLES[name]
        copies = role.copies()
        children += [Child(role=role, env={**env, **role.env(copies)}) for _ in range(copies)]
    if "web" in role_names:
        _print_urls()
    return supervise(children)


if __name__ == "__main__":
    requested = sys.argv[1:] or [name for name, role in ROLES.items() if role.default]
    unknown = set(requested) - set(ROLES)
    if unknown:
        sys.exit(f"unknown role(s): {', '.join(sorted(unknown))}; use {', '.join(ROLES)}")
    sys.exit(main(requested))
