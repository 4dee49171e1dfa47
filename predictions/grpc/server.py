"""The gRPC data plane server: the inference service, health, reflection, TLS, graceful stop.

`python -m predictions.grpc` (the `grpc` role of `python -m mlapi.serve`) runs `serve()`.
gRPC objects are created only in `build_server()`, in the serving process itself, never in a
parent that forks afterwards (gunicorn's master, Celery's prefork pool): gRPC's core threads
and sockets do not survive a fork.

Settings: MLAPI_GRPC_PORT (default 8001) on HOST, MLAPI_GRPC_THREADS (handler threads,
default 2), MLAPI_GRPC_TLS_CERT + MLAPI_GRPC_TLS_KEY (PEM files: TLS instead of plaintext),
MLAPI_MAX_REQUEST_BYTES (message limit), MLAPI_GRPC_REUSEPORT (share the port with sibling
processes: set by `mlapi.serve` for MLAPI_GRPC_PROCESSES > 1), MLAPI_GRPC_GRACE_S (seconds
in-flight calls get on SIGTERM, default 10).
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from pathlib import Path

import grpc
from django.conf import settings
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from predictions.grpc import messages
from predictions.grpc.service import InferenceService

logger = logging.getLogger("mlapi.grpc")
# gRPC refuses bigger messages itself (RESOURCE_EXHAUSTED, its own words); up to this much over
# the limit the service reads the size and answers `payload_too_large: ...` (CONTRACT 8).
LIMIT_SLACK_BYTES = 1 << 20


def server_options() -> list[tuple[str, int]]:
    limit = settings.MLAPI_MAX_REQUEST_BYTES
    return [
        ("grpc.max_receive_message_length", limit + LIMIT_SLACK_BYTES),
        ("grpc.max_send_message_length", max(limit, 64 << 20)),
        # A second server on the same port is an error, not a split; except between the
        # copies `mlapi.serve` starts (MLAPI_GRPC_PROCESSES), which checks the port first.
        ("grpc.so_reuseport", 1 if settings.MLAPI_GRPC_REUSEPORT else 0),
    ]


def _credentials() -> grpc.ServerCredentials | None:
    cert, key = settings.MLAPI_GRPC_TLS_CERT, settings.MLAPI_GRPC_TLS_KEY
    if not cert and not key:
        return None
    if not (cert and key):
        raise SystemExit("MLAPI_GRPC_TLS_CERT and MLAPI_GRPC_TLS_KEY must be set together")
    return grpc.ssl_server_credentials([(Path(key).read_bytes(), Path(cert).read_bytes())])


def build_server(*, address: str) -> tuple[grpc.Server, health.HealthServicer, int]:
    """(server, its health servicer, bound port): not started."""
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=settings.MLAPI_GRPC_THREADS, thread_name_prefix="grpc"
        ),
        options=server_options(),
    )
    server.add_generic_rpc_handlers((InferenceService().generic_handler(),))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", messages.SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (messages.SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME),
        server,
        pool=messages.POOL,
    )
    credentials = _credentials()
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    return server, health_servicer, port


def serve(*, host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT, then stop taking calls and let in-flight ones finish."""
    from keys.limits import close_stores
    from usage.recording import flush_usage_on_exit

    server, health_servicer, bound = build_server(address=f"{host}:{port}")
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    tls = "TLS" if settings.MLAPI_GRPC_TLS_CERT else "plaintext"
    logger.info("gRPC data plane on %s:%d (%s)", host, bound, tls)
    print(f"mlapi gRPC data plane on {host}:{bound} ({tls})", flush=True)
    stopping.wait()
    health_servicer.enter_graceful_shutdown()
    server.stop(grace=settings.MLAPI_GRPC_GRACE_S).wait()
    close_stores()  # limits reservations go back before the process does
    flush_usage_on_exit()
    logger.info("gRPC data plane stopped")
