"""Scoring one chunk of job rows through the same validation and inference as the API.

A row that cannot be scored (ragged, not an object, a bad value, or one the estimator itself
rejects) gets its message in the `error` column; every other row of the chunk is predicted.

Fast path: a CSV chunk for a model whose features are all numeric is converted to one float
matrix with numpy and checked vectorially (finite, within the schema's range). Only rows that
fail those checks (or a chunk numpy cannot convert) go through `validate_rows`, which is the
authority on what is wrong with them; the fast path never accepts a row that it would refuse.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from predictions.errors import ModelUnavailable
from predictions.validation import validate_rows

logger = logging.getLogger("mlapi.jobs")

# A chunk is bounded in size, so its prediction is bounded in time; the API's per-request
# timeout (MLAPI_PREDICT_TIMEOUT_S) is meant for interactive calls, not for a worker.
CHUNK_PREDICT_TIMEOUT_S = 3600.0
Outcome = tuple[Any, str]  # (prediction, error message); exactly one is set


def _predict_each(predictor: Any, columns: Sequence[Sequence[Any]]) -> list[Outcome]:
    """Row by row, after the whole chunk failed in the estimator: isolate the culprits."""
    out: list[Outcome] = []
    for row in range(len(columns[0]) if len(columns) else 0):
        single = [[column[row]] for column in columns]
        try:
            value = predictor.predict(single, timeout=CHUNK_PREDICT_TIMEOUT_S).predictions[0]
            out.append((value, ""))
        except ModelUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the estimator's complaint about this row
            out.append((None, f"prediction failed: {exc.__class__.__name__}"))
    return out


def _predict(predictor: Any, columns: Sequence[Sequence[Any]]) -> list[Outcome]:
    try:
        result = predictor.predict(columns, timeout=CHUNK_PREDICT_TIMEOUT_S)
    except ModelUnavailable:
        raise  # the model, not the rows: fail the job
    except Exception:  # some row(s) upset the estimator
        logger.warning("chunk prediction failed; retrying row by row", exc_info=True)
        return _predict_each(predictor, columns)
    return [(value, "") for value in result.predictions]


class Chunk:
    """A chunk as the scorer needs it: cells per row, objects (JSON Lines), row errors."""

    __slots__ = ("cells", "errors", "objs")

    def __init__(self, rows: list, csv_columns: list[str] | None) -> None:
        if csv_columns is not None:
            width = len(csv_columns)
            self.cells: list[list[str]] = rows
            self.objs: list[dict | None] | None = None
            self.errors: dict[int, str] = {}
            for i in [i for i, row in enumerate(rows) if len(row) != width]:
                self.errors[i] = f"row has {len(rows[i])} values, expected {width}"
                rows[i] = (rows[i] + [""] * width)[:width]
        else:
            self.cells = [record.values for record in rows]
            self.objs = [record.obj for record in rows]
            self.errors = {i: record.error for i, record in enumerate(rows) if record.error}


def _numeric_matrix(
    schema: list[dict], chunk: Chunk, csv_columns: list[str]
) -> tuple[np.ndarray, np.ndarray] | None:
    """(N x F float matrix in schema order, mask of rows passing every check), or None."""
    if chunk.errors or any(feature["type"] != "number" for feature in schema):
        return None
    try:
        matrix = np.array(chunk.cells, dtype=np.float64)
    except ValueError:  # an empty or non-numeric cell somewhere: the careful path
        return None
    order = [csv_columns.index(feature["name"]) for feature in schema]
    if order != list(range(len(order))):
        matrix = matrix[:, order]
    low = np.array([_bound(f.get("minimum"), -np.inf) for f in schema])
    high = np.array([_bound(f.get("maximum"), np.inf) for f in schema])
    ok = (np.isfinite(matrix) & (matrix >= low) & (matrix <= high)).all(axis=1)
    return matrix, ok


def _bound(value: Any, default: float) -> float:
    return default if value is None else float(value)


def _score_careful(
    predictor: Any, chunk: Chunk, indices: list[int], csv_columns: list[str] | None
) -> dict[int, Outcome]:
    """validate_rows + predict for the rows at `indices` (the reference path)."""
    outcome: dict[int, Outcome] = {}
    mappings, positions = [], []
    for i in indices:
        if i in chunk.errors:
            outcome[i] = (None, chunk.errors[i])
            continue
        if chunk.objs is None:
            mappings.append(dict(zip(csv_columns, chunk.cells[i], strict=True)))
        else:
            mappings.append(chunk.objs[i])
        positions.append(i)
    if mappings:
        columns, ok_indices, errors = validate_rows(
            predictor.schema, mappings, coerce_strings=csv_columns is not None
        )
        for index, message in errors.items():
            outcome[positions[index]] = (None, message)
        if ok_indices:
            predicted = _predict(predictor, columns)
            for index, result in zip(ok_indices, predicted, strict=True):
                outcome[positions[index]] = result
    return outcome


def _format(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def score_chunk(predictor: Any, rows: list, writer: Any, *, csv_columns: list[str] | None) -> int:
    """Write one results line per row (input cells, prediction, error); return failures.

    `rows`: CSV rows (lists of cells) when `csv_columns` (the header) is given, else JSON Lines
    `Record`s. The rows' cell lists are extended in place with the two result cells.
    """
    chunk = Chunk(rows, csv_columns)
    fast = _numeric_matrix(predictor.schema, chunk, csv_columns) if csv_columns else None
    if fast is not None and fast[1].all():  # the common case: every row is good
        predicted = _predict(predictor, fast[0].T)
        if not any(error for _, error in predicted):
            labels = [value for value, _ in predicted]
            if not all(type(label) is str for label in labels):  # regression: floats
                labels = [_format(label) for label in labels]
            for cells, label in zip(chunk.cells, labels, strict=True):
                cells.extend((label, ""))
            writer.writerows(chunk.cells)
            return 0
        outcome = dict(enumerate(predicted))
    elif fast is not None:
        matrix, ok = fast
        good = np.flatnonzero(ok)
        outcome = dict(zip(good.tolist(), _predict(predictor, matrix[good].T), strict=True))
        outcome.update(_score_careful(predictor, chunk, np.flatnonzero(~ok).tolist(), csv_columns))
    else:
        outcome = _score_careful(predictor, chunk, list(range(len(chunk.cells))), csv_columns)
    failed = 0
    for i, cells in enumerate(chunk.cells):
        value, error = outcome.get(i, (None, "row was not scored"))
        if error or value is None:
            failed += 1
            cells.extend(("", error or "row was not scored"))
        else:
            cells.extend((_format(value), ""))
    writer.writerows(chunk.cells)
    return failed
