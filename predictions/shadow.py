"""Shadow scoring: a candidate version also scores a sample of live requests, off the request path.

The request thread only puts `(model, answered version, shadow version, columns, answer)` on
a bounded in-process queue (`put_nowait`: about a microsecond) and returns; when the queue is
full the item is dropped and counted, so a slow shadow never slows callers. One daemon thread
per process scores the items with the shadow version (never charged, never recorded as usage,
never seen by the caller) and counts agreement per version pair in Prometheus counters
(multiprocess-safe under gunicorn), which /metrics exports and the admin shows.

Agreement per instance: classification labels equal; numbers within `MLAPI_SHADOW_RTOL`
relative (default 1e-3). Why not Celery: a broker publish costs a network round trip on the
request thread and serialises the inputs; a sample that may be dropped does not need it.
"""

from __future__ import annotations

import logging
import os
import queue
import threading

import numpy as np
from django.conf import settings
from prometheus_client import Counter

logger = logging.getLogger(__name__)

SHADOW_INSTANCES = Counter(
    "mlapi_shadow_instances_total",
    "Instances scored by a shadow version, by model, version pair and agreement.",
    ["model", "version", "shadow_version", "outcome"],
)
SHADOW_REQUESTS = Counter(
    "mlapi_shadow_requests_total",
    "Requests mirrored to a shadow version: scored, dropped (queue full) or failed.",
    ["model", "version", "shadow_version", "outcome"],
)

_queue: queue.Queue = queue.Queue(maxsize=settings.MLAPI_SHADOW_QUEUE)
_thread_lock = threading.Lock()
_thread: dict = {"thread": None, "pid": None}


def mirror(*, model: str, version: str, shadow: str, columns: list, predictions: list) -> bool:
    """Queue one request for the shadow; False (and counted) when the queue is full."""
    _ensure_thread()
    try:
        _queue.put_nowait((model, version, shadow, columns, predictions))
    except queue.Full:
        SHADOW_REQUESTS.labels(model, version, shadow, "dropped").inc()
        return False
    return True


def _ensure_thread() -> None:
    thread = _thread["thread"]
    if thread is not None and thread.is_alive() and _thread["pid"] == os.getpid():
        return
    with _thread_lock:
        thread = _thread["thread"]
        if thread is None or not thread.is_alive() or _thread["pid"] != os.getpid():
            thread = threading.Thread(target=_loop, name="shadow-scorer", daemon=True)
            _thread.update(thread=thread, pid=os.getpid())
            thread.start()


def _loop() -> None:
    while True:
        item = _queue.get()
        try:
            score(*item)
        except Exception:  # a shadow failure must never stop the thread
            logger.exception("shadow scoring failed")
        finally:
            _queue.task_done()


def agreeing(task: str, answer: list, shadow: list) -> int:
    """How many instances the shadow answered like the version that answered the caller."""
    if task == "classification":
        return sum(str(a) == str(b) for a, b in zip(answer, shadow, strict=True))
    rtol = settings.MLAPI_SHADOW_RTOL
    close = np.isclose(np.asarray(shadow, float), np.asarray(answer, float), rtol=rtol, atol=0)
    return int(close.sum())


def score(model: str, version: str, shadow: str, columns: list, predictions: list) -> None:
    """Score one mirrored request with the shadow version and count its agreement."""
    from django.db import connections

    from predictions.inference import get_predictor

    try:
        predictor = get_predictor(model, shadow)
        result = predictor.predict(columns)
    except Exception:  # noqa: BLE001 - missing, retired, failing or timed-out shadow
        SHADOW_REQUESTS.labels(model, version, shadow, "failed").inc()
        return
    finally:
        connections.close_all()  # this thread's own, if a route load opened one
    agreed = agreeing(predictor.task, predictions, result.predictions)
    SHADOW_REQUESTS.labels(model, version, shadow, "scored").inc()
    SHADOW_INSTANCES.labels(model, version, shadow, "agree").inc(agreed)
    SHADOW_INSTANCES.labels(model, version, shadow, "disagree").inc(len(predictions) - agreed)


def wait_idle(timeout: float = 5.0) -> bool:
    """Block until every queued item is scored (tests and the bench); False on timeout."""
    done = threading.Event()

    def join() -> None:
        _queue.join()
        done.set()

    threading.Thread(target=join, daemon=True).start()
    return done.wait(timeout)


def agreement(model: str) -> dict[tuple[str, str], dict[str, float]]:
    """{(version, shadow_version): {"agree", "disagree"}} for `model`, from the counters of
    every worker of this node (multiprocess mode) or of this process."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    pairs: dict[tuple[str, str], dict[str, float]] = {}
    for family in registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if sample.name != "mlapi_shadow_instances_total" or labels.get("model") != model:
                continue
            pair = pairs.setdefault(
                (labels["version"], labels["shadow_version"]), {"agree": 0.0, "disagree": 0.0}
            )
            pair[labels["outcome"]] = pair.get(labels["outcome"], 0.0) + sample.value
    return pairs
