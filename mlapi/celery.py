"""The Celery application, configured from Django settings (keys prefixed CELERY_).

The default broker is embedded: kombu's SQLAlchemy transport on a SQLite file in the data dir
(`embedded+sqlite:///...`), through a subclass that polls every 0.1 s instead of 1 s. The
interval cannot be given as a transport option because that transport hands every option
to SQLAlchemy's create_engine. Measured (bench/batch_jobs.py): job pickup ~1.0 s -> ~0.1 s.
"""

import os

from celery import Celery
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
