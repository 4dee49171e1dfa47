"""The Celery application, configured from Django settings (keys prefixed CELERY_).

The default broker is embedded: kombu's SQLAlchemy transport on a SQLite file in the data dir
(`embedded+sqlite:///...`), through a subclass that polls every 0.1 s instead of 1 s. The
interval cannot be given as a transport option because that transport hands every option
to SQLAlchemy's create_engine. Measured (bench/batch_jobs.py): job pickup ~1.0 s -> ~0.1 s.
"""

import contextlib
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
