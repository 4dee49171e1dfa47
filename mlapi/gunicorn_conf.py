"""gunicorn settings for `make run`, the benchmark and the multi-node tests."""

import os
import sys

worker_class = "mlapi.gunicorn_worker.SyncWorker"  # JSON for its own 400/414/431
timeout = int(float(os.environ.get("MLAPI_PREDICT_TIMEOUT_S", "40"))) + 20
graceful_timeout = 30
keepalive = 5
accesslog = None
max_requests = 0
preload_app = False


def post_worker_init(worker):
    """On SQLite, move WAL checkpoints off the request path (see mlapi/sqlite_checkpoint.py)."""
    from mlapi.sqlite_checkpoint import start_background_checkpoints

    start_background_checkpoints()


def child_exit(server, worker):
    """Tell prometheus_client a worker is gone so its live gauges are dropped."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):
    """Give back limits reservations and write buffered usage records before going (SIGTERM)."""
    limits = sys.modules.get("keys.limits")  # absent if the app never loaded
    if limits is not None:
        limits.close_stores()  # reservations go back before the process does
    recording = sys.modules.get("usage.recording")
    if recording is not None:
        recording.flush_usage_on_exit()
