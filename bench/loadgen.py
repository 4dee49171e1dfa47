"""Drive one case with wrk (Debian's `wrk`, with bench/wrk/request.lua for bodies and counts).

`run_case` returns requests/s, p50/p90/p99 in ms, the count of non-2xx responses by status, and
socket errors: the numbers `make bench` reports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import prioritise

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk" / "request.lua"


@dataclass(frozen=True)
class Case:
    """One request to repeat: what `make bench` measures side by side."""

    key: str  # "a", "b", "c", ...
    label: str
    method: str
    url: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def find_wrk() -> str:
    """Path of wrk; tells how to install it when it is missing."""
    path = shutil.which("wrk")
    if not path:
        raise SystemExit(
            "wrk is not installed: `apt-get install -y wrk` (Debian package), then re-run."
        )
    return path


def parse_wrk_output(stdout: str) -> dict:
    """Turn the BENCH_JSON line printed by request.lua into the bench's figures."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{stdout[-2000:]}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = raw["duration_us"] / 1e6
    statuses = {int(k): v for k, v in raw["statuses"].items()}
    non_2xx = {code: n for code, n in sorted(statuses.items()) if not 200 <= code < 300}
    socket_errors = sum(raw["socket_errors"].values())
    ok = sum(n for code, n in statuses.items() if 200 <= code < 300)
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "ok_rps": round(ok / seconds, 1) if seconds else 0.0,
        "p50_ms": round(raw["latency_us"]["p50"] / 1000, 2),
        "p90_ms": round(raw["latency_us"]["p90"] / 1000, 2),
        "p99_ms": round(raw["latency_us"]["p99"] / 1000, 2),
        "max_ms": round(raw["latency_us"]["max"] / 1000, 2),
        "non_2xx": sum(non_2xx.values()),
        "non_2xx_by_status": {str(k): v for k, v in non_2xx.items()},
        "socket_errors": socket_errors,
    }


def run_case(case: Case, *, connections: int, seconds: float, threads: int | None = None) -> dict:
    """Run wrk against one case for `seconds` with `connections` open connections."""
    threads = threads or min(2, connections)
    env = {
        **os.environ,
        "BENCH_METHOD": case.method,
        "BENCH_BODY": case.body.decode(),
        "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in case.headers.items()),
    }
    args = [
        find_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        case.url,
    ]
    # Its own session, so `--nice` can rank it like the servers (see servers.prioritise).
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        prioritise(proc.pid, os.getpriority(os.PRIO_PROCESS, 0))
        stdout, stderr = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stderr[-2000:]}")
    figures = parse_wrk_output(stdout)
    figures["connections"] = connections
    return figures
