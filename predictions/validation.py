"""Strict input validation: request bodies and instances against a version's input schema.

Errors are DRF `ValidationError`s whose detail flattens to fields such as
`instances[3].petal_length`. Bodies are parsed here (not by a generic JSON parser) so the
non-standard literals NaN, Infinity and -Infinity become a sentinel that validation refuses
with the field's path instead of a vague parse error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson
from rest_framework.exceptions import ParseError, ValidationError

MAX_REPORTED_ERRORS = 50


class NonFinite(str):
    """A NaN/Infinity literal found in a JSON body (kept apart from real strings)."""


def _non_finite(literal: str) -> NonFinite:
    return NonFinite(literal)


def parse_json(raw: bytes) -> Any:
    """Parse a JSON body: orjson on the fast path, NaN/Infinity literals as `NonFinite`."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw, parse_constant=_non_finite)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ParseError("The body is not valid JSON.", code="invalid_json") from exc


def _number_check(feature: dict) -> Callable[[Any], tuple[Any, str | None]]:
    low, high = feature.get("minimum"), feature.get("maximum")

    def check(value: Any) -> tuple[Any, str | None]:
        if isinstance(value, bool):
            return None, "must be a number, not a boolean"
        if isinstance(value, NonFinite):
            return None, f"must be a finite number, not {value}"
        if not isinstance(value, (int, float)):
            kind = "null" if value is None else type(value).__name__.replace("str", "a string")
            return None, f"must be a number, not {kind}"
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a double
            number = math.inf
        if not math.isfinite(number):
            return None, "must be a finite number, not NaN or Infinity"
        if (low is not None and number < low) or (high is not None and number > high):
            return None, f"must be between {low} and {high}, got {number}"
        return number, None

    return check


def _category_check(feature: dict) -> Callable[[Any], tuple[Any, str | None]]:
    allowed = frozenset(feature["categories"])
    listed = ", ".join(feature["categories"][:20])

    def check(value: Any) -> tuple[Any, str | None]:
        if not isinstance(value, str) or isinstance(value, NonFinite):
            return None, f"must be one of the strings {listed}"
        if value not in allowed:
            return None, f"unknown category {value[:40]!r}; expected one of {listed}"
        return value, None

    return check


def _checks(features: Sequence[dict]) -> list[Callable]:
    return [_category_check(f) if f["type"] == "category" else _number_check(f) for f in features]


def _row(instance: Any, features: Sequence[dict], checks: list) -> tuple[list, dict]:
    """(values in schema order, {field: message}); field "" means the instance itself."""
    names = [f["name"] for f in features]
    if isinstance(instance, dict):
        errors = {key: "unknown feature" for key in instance if key not in names}
        raw = []
        for name in names:
            if name not in instance:
                errors[name] = "required feature is missing"
            raw.append(instance.get(name))
    elif isinstance(instance, list):
        if len(instance) != len(names):
            order = ", ".join(names)
            return [], {"": f"expected {len(names)} values ({order}), got {len(instance)}"}
        raw, errors = instance, {}
    else:
        return [], {"": "must be an object keyed by feature name or an array in schema order"}
    values = []
    for name, check, value in zip(names, checks, raw, strict=True):
        if name in errors:
            values.append(None)
            continue
        clean, message = check(value)
        if message:
            errors[name] = message
        values.append(clean)
    return values, errors


def _detail(errors: dict) -> dict | list:
    return {k: ([v] if isinstance(v, str) else v) for k, v in errors.items()}


def _fast_columns(features: Sequence[dict], instances: list) -> list[list] | None:
    """Columns when every instance is clean, checked in bulk; None sends it to the slow path.

    The slow path (`_row` per instance) finds and words the errors; this one only says
    "all good" quickly for the common case of well-formed batches.
    """
    names = [f["name"] for f in features]
    width = len(names)
    if all(type(r) is list and len(r) == width for r in instances):
        rows = instances
    elif all(type(r) is dict and len(r) == width for r in instances):
        try:
            rows = [[r[n] for n in names] for r in instances]
        except KeyError:
            return None
    else:
        return None
    columns = [list(c) for c in zip(*rows, strict=True)]
    for feature, column in zip(features, columns, strict=True):
        if feature["type"] == "category":
            if not all(type(v) is str for v in column) or not set(column) <= set(
                feature["categories"]
            ):
                return None
            continue
        if not {type(v) for v in column} <= {float, int}:
            return None
        try:
            values = np.asarray(column, dtype=np.float64)
        except OverflowError:
            return None
        low, high = feature.get("minimum"), feature.get("maximum")
        if not np.isfinite(values).all():
            return None
        if (low is not None and values.min() < low) or (high is not None and values.max() > high):
            return None
    return columns


def validate_instances(
    features: Sequence[dict], instances: Any, *, max_instances: int
) -> list[list]:
    """Columns (one list per feature, schema order) or ValidationError for `instances[i].x`."""
    if not isinstance(instances, list):
        raise ValidationError({"instances": ["must be a list of instances"]})
    if not instances:
        raise ValidationError({"instances": ["must contain at least one instance"]})
    if len(instances) > max_instances:
        raise ValidationError(
            {"instances": [f"at most {max_instances} instances per request on your plan"]}
        )
    fast = _fast_columns(features, instances)
    if fast is not None:
        return fast
    checks = _checks(features)
    columns: list[list] = [[] for _ in features]
    bad: dict[int, Any] = {}
    for index, instance in enumerate(instances):
        values, errors = _row(instance, features, checks)
        if errors:
            bad[index] = errors.pop("") if "" in errors else _detail(errors)
            if len(bad) >= MAX_REPORTED_ERRORS:
                break
            continue
        if not bad:
            for column, value in zip(columns, values, strict=True):
                column.append(value)
    if bad:
        raise ValidationError(
            {"instances": {i: e if isinstance(e, dict) else [e] for i, e in bad.items()}}
        )
    return columns


def validate_body(
    body: Any,
    features: Sequence[dict],
    *,
    max_instances: int,
    allowed: Sequence[str] = ("instances", "parameters"),
) -> tuple[list[list], dict]:
    """(columns, parameters) from a v1 predict body `{"instances": [...], "parameters"?: {...}}`."""
    if not isinstance(body, dict):
        raise ValidationError(["the body must be a JSON object with an `instances` list"])
    unknown = [key for key in body if key not in allowed]
    if unknown:
        raise ValidationError({key: ["unknown member"] for key in unknown})
    if "instances" not in body:
        raise ValidationError({"instances": ["this member is required"]})
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ValidationError({"parameters": ["must be an object"]})
    for key, value in parameters.items():
        if key != "probabilities":
            raise ValidationError({"parameters": {key: ["unknown parameter"]}})
        if not isinstance(value, bool):
            raise ValidationError({"parameters": {key: ["must be true or false"]}})
    columns = validate_instances(features, body["instances"], max_instances=max_instances)
    return columns, parameters


def _coerce(value: Any, feature: dict) -> Any:
    """CSV cells are strings: numbers are parsed (never NaN/inf), empty cells are missing."""
    if not isinstance(value, str) or feature["type"] != "number":
        return value
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return value
    return number if math.isfinite(number) else NonFinite(text)


def validate_rows(
    features: Sequence[dict], rows: Sequence[Any], *, coerce_strings: bool = False
) -> tuple[list[list], list[int], dict[int, str]]:
    """For batch jobs: (columns of the good rows, their indices, {bad row index: message}).

    A bad row fails alone. With `coerce_strings` (CSV input), numeric cells given as text
    are parsed first; "nan"/"inf" are still refused.
    """
    checks = _checks(features)
    by_name = {f["name"]: f for f in features}
    columns: list[list] = [[] for _ in features]
    ok: list[int] = []
    errors: dict[int, str] = {}
    for index, row in enumerate(rows):
        if coerce_strings and isinstance(row, dict):
            row = {k: _coerce(v, by_name[k]) if k in by_name else v for k, v in row.items()}
        elif coerce_strings and isinstance(row, list) and len(row) == len(features):
            row = [_coerce(v, f) for v, f in zip(row, features, strict=True)]
        values, problems = _row(row, features, checks)
        if problems:
            errors[index] = "; ".join(f"{k}: {v}" if k else v for k, v in problems.items())
            continue
        ok.append(index)
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns, ok, errors


def validate_matrix(features: Sequence[dict], matrix: np.ndarray, *, max_instances: int):
    """Columns (a `[features, N]` float64 array) from a clean numeric `[N, F]` matrix, or None.

    The binary protocols' fast path for all-numeric models: one vectorised check of batch size,
    finiteness and ranges. None means "not all good": the caller then validates the same values
    instance by instance, which words the errors (`instances[i].x`).
    """
    rows = matrix.shape[0] if matrix.ndim == 2 else 0
    if (
        not rows
        or rows > max_instances
        or matrix.shape[1] != len(features)
        or any(f["type"] != "number" for f in features)
        or not np.isfinite(matrix).all()
    ):
        return None
    columns = np.ascontiguousarray(matrix.T, dtype=np.float64)
    for feature, column in zip(features, columns, strict=True):
        low, high = feature.get("minimum"), feature.get("maximum")
        if (low is not None and column.min() < low) or (high is not None and column.max() > high):
            return None
    return columns
