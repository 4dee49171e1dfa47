"""Start, probe and stop the servers under test: mlapi in production mode and the baseline.

Every process is started in its own session so it and its children (gunicorn workers, the
Celery worker, uvicorn workers) can be stopped by the process-group id we were given, and
nothing else. Ports are picked free by binding port 0.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def stop_cleanly_on_signals() -> None:
    """SIGINT and SIGTERM unwind the bench (its `finally` blocks stop the servers), even when
    it was started in the background, where SIGINT is ignored by default."""

    def bail(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, bail)
    signal.signal(signal.SIGTERM, bail)


def prioritise(pid: int, nice: int) -> None:
    """Give a process (and, with autogroup scheduling, its whole session) niceness `nice`.

    With kernel.sched_autogroup_enabled each session is one scheduling group and niceness
    only ranks processes inside a group, so the group's own nice is set as well (root only).
    """
    if not nice:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError:
        pass


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    """One request with the standard library: returns (status, parsed JSON or text)."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the bench only talks to servers it started on loopback: {url}")
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    """Poll `url` until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            if http("GET", url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


@dataclass
class Server:
    """A running server: its base URL, its process and a log file."""

    name: str
    base_url: str
    proc: subprocess.Popen
    log_path: Path
    extra: dict = field(default_factory=dict)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the process group we started, then SIGKILL it if it lingers."""
        if self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session=True: the leader's pid is the group id
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(10)

    def web_worker_pids(self) -> list[int]:
        """pids of the gunicorn (or uvicorn) worker processes under this server."""
        pids = []
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                cmdline = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "celery" in cmdline or "resource_tracker" in cmdline:
                continue
            parent = child.parent()
            parent_cmd = " ".join(parent.cmdline()) if parent else ""
            if "gunicorn" in parent_cmd or "multiprocessing" in cmdline:
                pids.append(child.pid)
        return pids


def _spawn(name: str, args: list[str], env: dict, log_dir: Path) -> tuple[subprocess.Popen, Path]:
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    proc = subprocess.Popen(
        args, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    prioritise(proc.pid, os.getpriority(os.PRIO_PROCESS, 0))  # the bench's own niceness
    return proc, log_path


def mlapi_env(data_dir: Path, *, services: dict[str, str]) -> dict[str, str]:
    """The production environment: debug off, generated secret, no HTTPS redirect.

    `services` holds DATABASE_URL / REDIS_URL / CELERY_BROKER_URL for the services run; the
    embedded run passes none and gets SQLite, diskcache and the embedded broker.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "MLAPI_TESTING"}
    }
    env.update(services)
    env.update(
        DJANGO_SETTINGS_MODULE="mlapi.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        MLAPI_SSL_REDIRECT="0",
        MLAPI_DATA_DIR=str(data_dir),
        MLAPI_LOG_LEVEL=os.environ.get("MLAPI_LOG_LEVEL", "WARNING"),
        PROMETHEUS_MULTIPROC_DIR=str(data_dir / "metrics"),
    )
    (data_dir / "metrics").mkdir(parents=True, exist_ok=True)
    return env


@contextmanager
def fresh_postgres_database(url: str):
    """A new, empty database beside the one `url` names, dropped afterwards; yields its URL.

    The services run needs a fresh registry like the embedded one: an old database would list
    models whose artifacts lived in an earlier run's (deleted) temp data dir.
    """
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'mlapi'}_bench_{os.getpid()}"
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(env: dict, *args: str) -> str:
    """Run `manage.py <args>` in the benchmark environment; return its stdout."""
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def prepare_mlapi(env: dict) -> dict:
    """migrate, collectstatic, bootstrap_demo, then provision the bench subscriber.

    Returns the provisioning result: {"username", "plan", "api_key"}.
    """
    manage(env, "migrate", "--noinput")
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    manage(env, "bootstrap_demo")
    result = subprocess.run(
        [PYTHON, str(BASE_DIR / "bench" / "provision.py")],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bench/provision.py failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def start_mlapi(env: dict, log_dir: Path, *, workers: int, with_worker: bool) -> Server:
    """`make run`'s server (mlapi.serve: gunicorn + Celery worker), or its web role alone."""
    port = free_port()
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    env.setdefault("MLAPI_GRPC_PORT", str(free_port()))  # all roles include the gRPC server
    # mlapi.serve is `make run`'s entry point; its "web" role is gunicorn alone.
    args = [PYTHON, "-m", "mlapi.serve", *([] if with_worker else ["web"])]
    proc, log_path = _spawn("mlapi", args, env, log_dir)
    server = Server("mlapi", f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_until_up(server.base_url + "/healthz", proc)
    except Exception:
        server.stop()
        raise
    return server


def start_baseline(log_dir: Path, *, workers: int = 2) -> Server:
    """The seed-001 FastAPI app under plain uvicorn with 2 workers; fetch its JWT."""
    port = free_port()
    env = {**os.environ, "BASELINE_SECRET_KEY": secrets.token_urlsafe(32)}
    args = [
        PYTHON, "-m", "uvicorn", "--app-dir", str(BASE_DIR / "bench"), "baseline_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    proc, log_path = _spawn("baseline", args, env, log_dir)
    server = Server("baseline", f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_until_up(server.base_url + "/", proc)
        status, body = http("POST", server.base_url + "/token")
        if status != 200:
            raise RuntimeError(f"baseline /token answered {status}: {body}")
        server.extra["token"] = body["access_token"]
    except Exception:
        server.stop()
        raise
    return server


def memory_mb(pid: int) -> dict[str, float]:
    """Resident (RSS), proportional (PSS) and unique (USS) memory of one process, in MB."""
    info = psutil.Process(pid).memory_full_info()
    return {name: round(getattr(info, name) / 1e6, 1) for name in ("rss", "pss", "uss")}
