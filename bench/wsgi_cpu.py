"""CPU per request of the WSGI application itself: metered iris predict vs GET /healthz.

    .venv/bin/python bench/wsgi_cpu.py [--requests 2000] [--rounds 5] [--settings MODULE]
        [--rows N]

No server, no sockets, no load generator: the production-mode Django app is called in process
with a WSGI environ, so the figure is what mlapi's own code costs (middleware, DRF, key auth,
limits, validation, ONNX, usage recording) without gunicorn or the machine's noise from
connections. CPU time (`time.process_time`) per request, median over alternating rounds.
A fresh data dir is migrated, bootstrapped and provisioned like `make bench`'s server.
`--settings` compares a variant (e.g. a module that imports mlapi.settings and edits MIDDLEWARE).
`--rows N` adds REST with N rows and the gRPC ModelInfer handler (raw FP64, 1 and N rows), called
in process with a stand-in for its `grpc.ServicerContext`: what the data plane costs each
protocol without its transport, against which the served figures (bench/grpc_vs_rest.py) show
what gunicorn and gRPC's server add.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
IRIS = [5.1, 3.5, 1.4, 0.2]
BODY = json.dumps({"instances": [IRIS]}).encode()


class CallContext:
    """What a gRPC handler asks of its `grpc.ServicerContext`, without a server or socket."""

    def __init__(self, key: str) -> None:
        self.metadata = (("x-api-key", key),)
        self.code = None

    def invocation_metadata(self):
        return self.metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    def time_remaining(self):
        return None

    def send_initial_metadata(self, metadata) -> None:
        pass

    def set_trailing_metadata(self, metadata) -> None:
        pass

    def abort(self, code, details: str):
        self.code = code
        raise RuntimeError(details)


def grpc_request(rows: int) -> bytes:
    """A serialized `ModelInferRequest`: `rows` iris rows as raw FP64, the `predict` output
    (what REST v1 answers by default: no probabilities). bench/grpc_vs_rest.py frames it."""
    import numpy as np

    from predictions.grpc import messages as pb

    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP64", shape=[rows, 4])
    request.raw_input_contents.append(np.tile(np.asarray(IRIS, dtype="<f8"), (rows, 1)).tobytes())
    request.outputs.add(name="predict")
    return request.SerializeToString()


def grpc_infer(key: str):
    """`infer(raw) -> "200 OK"`: the gRPC server's ModelInfer handler, called in process."""
    from predictions.grpc.service import InferenceService

    service = InferenceService()
    handler = service.metered("ModelInfer", service.model_infer, consumes_quota=True)

    def infer(raw: bytes) -> str:
        context = CallContext(key)
        try:
            handler(raw, context)
        except RuntimeError as exc:
            return f"{context.code}: {exc}"
        return "200 OK"

    return infer


def prepare(data_dir: str) -> str:
    """Migrate, register the demo models and provision a bench key; returns the key."""
    py = sys.executable
    for args in (["manage.py", "migrate", "-v0"], ["manage.py", "bootstrap_demo"]):
        subprocess.run([py, *args], cwd=BASE_DIR, check=True, capture_output=True)
    out = subprocess.run(
        [py, "bench/provision.py"], cwd=BASE_DIR, check=True, capture_output=True
    ).stdout
    return json.loads(out)["api_keys"][0]


def environ(method: str, path: str, body: bytes = b"", key: str | None = None) -> dict:
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
    }
    if key:
        env["HTTP_X_API_KEY"] = key
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--settings", default="mlapi.settings")
    parser.add_argument(
        "--rows", type=int, default=0, help="also REST and gRPC (1 and this many rows)"
    )
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="mlapi-wsgi-cpu-")
    os.environ.update(
        MLAPI_DATA_DIR=data_dir,
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="bench-" + "x" * 50,
        ALLOWED_HOSTS="127.0.0.1",
        MLAPI_SSL_REDIRECT="0",
        MLAPI_USAGE_MODE="buffered",
        DJANGO_SETTINGS_MODULE=args.settings,
    )
    key = prepare(data_dir)
    sys.path.insert(0, str(BASE_DIR))
    from mlapi.wsgi import application

    def call(env: dict) -> str:
        status: list[str] = []
        result = application(env, lambda s, h: status.append(s))
        b"".join(result)
        result.close()
        return status[0]

    cases = {
        "metered iris predict": lambda: call(
            environ("POST", "/api/v1/models/iris/predict", BODY, key)
        ),
        "GET /healthz": lambda: call(environ("GET", "/healthz")),
    }
    if args.rows:
        infer = grpc_infer(key)
        body = json.dumps({"instances": [IRIS] * args.rows}).encode()
        grpc_one, grpc_many = grpc_request(1), grpc_request(args.rows)
        cases |= {
            f"REST {args.rows} rows": lambda: call(
                environ("POST", "/api/v1/models/iris/predict", body, key)
            ),
            "gRPC 1 row": lambda: infer(grpc_one),
            f"gRPC {args.rows} rows": lambda: infer(grpc_many),
        }
    for name, case in cases.items():
        status = case()
        if not status.startswith("200"):
            raise SystemExit(f"{name}: {status}")
    per_case: dict[str, list[float]] = {name: [] for name in cases}
    for round_no in range(args.rounds):
        order = list(cases) if round_no % 2 == 0 else list(cases)[::-1]
        for name in order:
            started = time.process_time()
            for _ in range(args.requests):
                cases[name]()
            per_case[name].append((time.process_time() - started) / args.requests * 1e6)
    for name, values in per_case.items():
        print(f"{name:24} {statistics.median(values):7.0f} us CPU per request (median)")


if __name__ == "__main__":
    main()
