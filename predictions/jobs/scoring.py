"""Scoring one chunk of job rows through the same validation and inference path as the API.

A row that cannot be scored (ragged, not an object, a bad value, or one the estimator itself
rejects) gets its message in the `error` column; every other row of the chunk is predicted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from predictions.jobs.parsing import Record
from predictions.validation import validate_rows

logger = logging.getLogger("mlapi.jobs")

# A chunk is bounded in size, so its prediction is bounded in time; the API's per-request
# timeout (MLAPI_PREDICT_TIMEOUT_S) is meant for interactive calls, not for a worker.
CHUNK_PREDICT_TIMEOUT_S = 3600.0


def _error_items(errors: Any) -> Iterable[tuple[int, str]]:
    """validate_rows' errors as (index, message), whether a dict or a list of pairs/dicts."""
    if isinstance(errors, dict):
        return ((int(i), str(m)) for i, m in errors.items())
    items = []
    for item in errors or ():
        if isinstance(item, dict):
            index = item.get("index", item.get("row"))
            items.append((int(index), str(item.get("message", item.get("error", "")))))
        else:
            items.append((int(item[0]), str(item[1])))
    return items


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _predict_each(predictor: Any, columns: Sequence[Sequence[Any]]) -> list[tuple[Any, str]]:
    """Row by row, after the whole chunk failed in the estimator: isolate the culprits."""
    out: list[tuple[Any, str]] = []
    for row in range(len(columns[0]) if columns else 0):
        single = [[column[row]] for column in columns]
        try:
            value = predictor.predict(single, timeout=CHUNK_PREDICT_TIMEOUT_S).predictions[0]
            out.append((value, ""))
        except Exception as exc:  # noqa: BLE001 - the estimator's own complaint about this row
            out.append((None, f"prediction failed: {exc.__class__.__name__}"))
    return out


def _predict(predictor: Any, columns: Sequence[Sequence[Any]]) -> list[tuple[Any, str]]:
    from predictions.errors import ModelUnavailable

    try:
        result = predictor.predict(columns, timeout=CHUNK_PREDICT_TIMEOUT_S)
    except ModelUnavailable:
        raise  # the model, not the rows: fail the job
    except Exception:  # some row(s) upset the estimator
        logger.warning("chunk prediction failed; retrying row by row", exc_info=True)
        return _predict_each(predictor, columns)
    return [(value, "") for value in result.predictions]


def score_chunk(predictor: Any, chunk: list[Record], writer: Any, *, coerce_strings: bool) -> int:
    """Write one results line per record (input values, prediction, error); return failures.

    `coerce_strings` for CSV input, whose numeric cells arrive as text.
    """
    outcome: dict[int, tuple[Any, str]] = {
        i: (None, record.error) for i, record in enumerate(chunk) if record.mapping is None
    }
    good = [i for i, record in enumerate(chunk) if record.mapping is not None]
    if good:
        columns, ok_indices, errors = validate_rows(
            predictor.schema, [chunk[i].mapping for i in good], coerce_strings=coerce_strings
        )
        for index, message in _error_items(errors):
            outcome[good[index]] = (None, message)
        if ok_indices:
            for index, result in zip(ok_indices, _predict(predictor, columns), strict=True):
                outcome[good[index]] = result
    failed = 0
    lines = []
    for i, record in enumerate(chunk):
        value, error = outcome.get(i, (None, "row was not scored"))
        if error or value is None:
            failed += 1
            lines.append([*record.values, "", error or "row was not scored"])
        else:
            lines.append([*record.values, _cell(value), ""])
    writer.writerows(lines)
    return failed
