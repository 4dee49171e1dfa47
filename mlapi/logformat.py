"""Structured logs: one JSON object per line (production's default; MLAPI_LOG_FORMAT=plain).

A small stdlib `logging.Formatter` rather than python-json-logger: the fields are few and
fixed (time, level, logger, message, request_id, process, and the exception when there is
one), and a log line must never depend on a third-party release. Log shippers (Loki, Vector,
CloudWatch) parse these lines as they are.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "request_id", "process"[, "exc"]}` per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "process": record.process,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()
