"""Private PostgreSQL and Redis instances, for the bench and for tests that crash or restart them.

`PrivatePostgres` is a throw-away cluster (`initdb` + `pg_ctl` from /usr/lib/postgresql/15/bin)
in a temp dir on a free port, trust auth, run as the `postgres` OS user when we are root
(PostgreSQL refuses to run as root). `PrivateRedis` is a redis-server on a free port with its
own working dir (persistence off unless asked). Both stop what they started, nothing else.
The shared services of the machine are never touched.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path(os.environ.get("MLAPI_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_available() -> bool:
    return (PG_BIN / "initdb").exists() and (os.geteuid() != 0 or _has_user("postgres"))


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")


class PrivatePostgres:
    """A PostgreSQL 15 cluster of our own: `start()`, `crash()` (immediate stop), `stop()`."""

    def __init__(self, *, options: dict[str, str] | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mlapi-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.options = {"listen_addresses": "127.0.0.1", "fsync": "on", **(options or {})}
        self._as_root = os.geteuid() == 0
        if self._as_root:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def _pg(self, tool: str, *args: str) -> None:
        command = [str(PG_BIN / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.root)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PrivatePostgres:
        settings = " ".join(f"-c {k}={v}" for k, v in self.options.items())
        self._pg(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60",
            "-o", f"-p {self.port} -k {self.root} {settings}", "start",
        )  # fmt: skip
        return self

    def crash(self) -> None:
        """`pg_ctl stop -m immediate`: no checkpoint, recovery from the WAL at the next start."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PrivateRedis:
    """A redis-server of our own on a free port; `save()` writes an RDB the next start reads."""

    def __init__(self, *, replica_of: int | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mlapi-redis-"))
        self.port = free_port()
        self.replica_of = replica_of
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, *, load_rdb: bool = False) -> PrivateRedis:
        if not load_rdb:
            (self.root / "dump.rdb").unlink(missing_ok=True)
        args = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
            "--save", "", "--appendonly", "no", "--dbfilename", "dump.rdb",
        ]  # fmt: skip
        if self.replica_of:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, cwd=self.root)
        _wait(self._answers, 15, f"redis-server on port {self.port} answering")
        return self

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except Exception:  # not up yet
            return False

    def run_id(self) -> str:
        return self.client().info("server")["run_id"]

    def save(self) -> None:
        """A snapshot now (dump.rdb), as a backup or an older persistence file would hold."""
        self.client().save()

    def stop(self) -> None:
        """Stop without saving (SIGKILL: a crash), so only an explicit `save()` persists."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextlib.contextmanager
def services_layout(*, mode: str, delay_us: int) -> Iterator[dict]:
    """PostgreSQL + Redis for `make bench`: a fresh database (dropped afterwards) with the
    emulated slow WAL flush, and Redis. Yields {"env", "wal_url", "where"}.

    `mode` "private": a cluster and a redis-server of our own (pg_stat_wal counts only the
    bench's own work); "urls": a database created beside DATABASE_URL and REDIS_URL as given
    (on a shared server pg_stat_wal, which is cluster-wide, also counts others' commits).
    """
    from bench import servers

    with contextlib.ExitStack() as stack:
        if mode == "private":
            pg = stack.enter_context(PrivatePostgres())
            redis = stack.enter_context(PrivateRedis())
            database_url, redis_url = pg.create_database("mlapi_bench"), redis.url()
            where = f"private PostgreSQL :{pg.port} + private Redis :{redis.port}"
        else:
            database_url = stack.enter_context(
                servers.fresh_postgres_database(os.environ["DATABASE_URL"])
            )
            redis_url = os.environ["REDIS_URL"]
            where = f"{database_url.split('@')[-1]} + {redis_url.split('@')[-1]}"
        slow_flush(database_url, delay_us)
        env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
        if os.environ.get("CELERY_BROKER_URL"):
            env["CELERY_BROKER_URL"] = os.environ["CELERY_BROKER_URL"]
        if delay_us:
            where += f", commit_delay {delay_us} us (emulated {delay_us / 1000:g} ms WAL flush)"
        yield {"env": env, "wal_url": database_url, "where": where}


def slow_flush(database_url: str, delay_us: int) -> None:
    """Make every WAL flush of `database_url`'s sessions wait `delay_us` first, as a cloud
    disk's flush does: `commit_delay` with `commit_siblings = 0` (new sessions only)."""
    import psycopg

    name = database_url.rsplit("/", 1)[-1]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET commit_delay = {int(delay_us)}')
        conn.execute(f'ALTER DATABASE "{name}" SET commit_siblings = 0')


def wal_syncs(database_url: str) -> int:
    """`pg_stat_wal.wal_sync`: WAL flushes to disk so far, cluster-wide (PostgreSQL >= 14)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return int(conn.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()[0])
