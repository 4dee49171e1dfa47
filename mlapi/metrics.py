"""Prometheus metrics shared by the apps, exported at /metrics.

Under gunicorn with several workers set PROMETHEUS_MULTIPROC_DIR (make run does) so the
exported numbers add up across worker processes.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

PREDICT_REQUESTS = Counter(
    "mlapi_predict_requests_total",
    "Data-plane prediction requests answered, by model, protocol, plan and outcome.",
    ["model", "protocol", "plan", "outcome"],
)
PREDICTIONS = Counter("mlapi_predictions_total", "Instances predicted, by model.", ["model"])
PREDICT_LATENCY = Histogram(
    "mlapi_predict_latency_seconds",
    "Server time for a prediction request, by model.",
    ["model"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def render_latest() -> tuple[bytes, str]:
    """The exposition text for this process, or for all workers in multiprocess mode, plus
    the stores' state (mlapi.state_metrics) read at scrape time."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    return generate_latest(registry) + _state_text(), CONTENT_TYPE_LATEST


def _state_text() -> bytes:
    """The state collector on a registry of its own, built per scrape."""
    from mlapi.state_metrics import StateCollector

    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector())
    return generate_latest(state)
