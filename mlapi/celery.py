"""The Celery application, configured from Django settings (keys prefixed CELERY_).

The default broker is embedded: kombu's SQLAlchemy transport on a SQLite file in the data dir
(`embedded+sqlite:///...`), through a subclass that polls every 0.1 s instead of 1 s. The
interval cannot be given as a transport option because that transport hands every option
to SQLAlchemy's create_engine. Measured (bench/batch_jobs.py): job pickup ~1.0 s -> ~0.1 s.
"""

import contextlib
import logging
import os

from celery import Celery
from celery.signals import worker_ready
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapi.settings")


class EmbeddedBrokerTransport(SQLAlchemyTransport):
    """kombu's SQLAlchemy transport, polling for new messages every 0.1 s."""

    polling_interval = 0.1


TRANSPORT_ALIASES.setdefault("embedded", "mlapi.celery:EmbeddedBrokerTransport")

# Beat sends these every 15 s. Their "received", "succeeded" and "Sending due task" lines (INFO)
# would be most of what `make run` prints; their failures (WARNING and up) still show.
QUIET_TASKS = frozenset({"mlapi.worker_heartbeat", "webhooks.sweep"})


class QuietHousekeeping(logging.Filter):
    """Drops Celery's INFO lines about the QUIET_TASKS (worker and beat loggers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        args = record.args
        if isinstance(args, dict):  # worker: "Task %(name)s[%(id)s] received/succeeded"
            return args.get("name") not in QUIET_TASKS
        if isinstance(args, tuple) and len(args) > 1:  # beat: "Sending due task %s (%s)"
            return args[1] not in QUIET_TASKS
        return True


for _logger in ("celery.worker.strategy", "celery.app.trace", "celery.beat"):
    logging.getLogger(_logger).addFilter(QuietHousekeeping())

app = Celery("mlapi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="mlapi.worker_heartbeat", ignore_result=True)
def worker_heartbeat() -> None:
    """Beat sends this every 15 s; its run proves broker, beat and a worker alive (metric
    `mlapi_worker_heartbeat_timestamp_seconds`, alert MlapiWorkerDown)."""
    from mlapi.state_metrics import write_worker_heartbeat

    write_worker_heartbeat()


@worker_ready.connect
def _heartbeat_at_start(**_: object) -> None:
    from mlapi.state_metrics import write_worker_heartbeat

    with contextlib.suppress(Exception):  # the cache may be down at start; beat retries
        write_worker_heartbeat()
