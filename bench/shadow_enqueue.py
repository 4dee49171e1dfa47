"""What handing one request to the shadow costs the request thread: in-process queue vs Celery.

    .venv/bin/python bench/shadow_enqueue.py [--count 2000]
    CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// .venv/bin/python bench/shadow_enqueue.py

Times (median and p99, microseconds) of `predictions.shadow`'s `queue.put_nowait` of a
one-row item, and of publishing the same item as a Celery task (`send_task` to a queue of this
bench's own, purged afterwards; nothing consumes it) on the configured broker (embedded SQLite
broker by default). The in-process queue is drained by a thread meanwhile, as in the server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapi.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("MLAPI_DATA_DIR", tempfile.mkdtemp(prefix="mlapi-bench-"))

import django  # noqa: E402

django.setup()

ITEM = ("iris", "1", "2", [[5.1], [3.5], [1.4], [0.2]], ["setosa"])


def timed(fn, count: int) -> dict[str, float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return {
        "median_us": round(statistics.median(samples), 2),
        "p99_us": round(samples[int(0.99 * len(samples))], 2),
    }


def in_process(count: int) -> dict[str, float]:
    items: queue.Queue = queue.Queue(maxsize=256)

    def drain() -> None:
        while True:
            items.get()

    threading.Thread(target=drain, daemon=True).start()

    def put() -> None:
        with contextlib.suppress(queue.Full):
            items.put_nowait(ITEM)

    return timed(put, count)


def celery(count: int) -> dict[str, float]:
    from mlapi.celery import app

    name = f"mlapi-bench-shadow-{uuid.uuid4().hex[:8]}"
    try:

        def publish() -> None:
            app.send_task("predictions.shadow_score", args=ITEM, queue=name)

        publish()  # connect once
        return timed(publish, count)
    finally:
        with app.connection_for_write() as connection:
            channel = connection.channel()
            with contextlib.suppress(Exception):  # the embedded broker may not support delete
                channel.queue_purge(name)
                channel.queue_delete(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    from django.conf import settings

    print("in-process queue.put_nowait:", in_process(args.count))
    print(f"celery send_task ({settings.CELERY_BROKER_URL.split(':')[0]}):", celery(args.count))


if __name__ == "__main__":
    main()
