"""Batch-job input files: store an upload on disk, check it up front, read it back in chunks.

Two formats: CSV with a header row (columns named after the model's features, any order) and
JSON Lines (one object per line). Blank lines are skipped everywhere, so the row count taken at
submission is the count the worker sees. Upfront checks refuse whole files (400/413/415);
anything that is wrong with a single row (ragged, not an object, bad JSON) is that row's error.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from mlapi.exceptions import DomainError, PayloadTooLarge

CSV = "csv"
JSONL = "jsonl"
SUFFIXES = {".csv": CSV, ".jsonl": JSONL, ".ndjson": JSONL}
SNIFFED_SUFFIXES = {"", ".txt"}
CSV_TYPES = {"text/csv", "application/csv"}
JSONL_TYPES = {"application/jsonl", "application/x-ndjson", "application/x-jsonlines"}
OTHER_DELIMITERS = (";", "\t", "|")
SNIFF_BYTES = 64 * 1024


class InvalidJobInput(DomainError):
    """The uploaded file or inline instances cannot be scored as a whole."""

    status = 400
    code = "validation_error"
    title = "Invalid batch input"

    def __init__(self, detail: str, *, field: str = "file") -> None:
        super().__init__(detail, errors=[{"field": field, "message": detail}])


class UnsupportedFileType(DomainError):
    """The upload is neither CSV nor JSON Lines."""

    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


@dataclass(frozen=True)
class StoredInput:
    """An input file on disk after its upfront checks."""

    path: Path
    input_format: str
    columns: list[str]
    rows: int


@dataclass(slots=True)
class Record:
    """One JSON Lines row: its cells for the results file, its object, or its error."""

    values: list[str]
    obj: dict[str, Any] | None = None
    error: str = ""


def detect_format(filename: str, content_type: str | None) -> str | None:
    """CSV or JSONL from the name (or declared type); None means "look at the content"."""
    suffix = Path(filename or "").suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if suffix not in SNIFFED_SUFFIXES:
        raise UnsupportedFileType(
            f"Files of type {suffix!r} are not supported; upload CSV (.csv) or JSON Lines (.jsonl)."
        )
    base_type = (content_type or "").split(";")[0].strip().lower()
    if base_type in CSV_TYPES:
        return CSV
    if base_type in JSONL_TYPES:
        return JSONL
    return None


def save_upload(*, upload: UploadedFile, directory: Path) -> Path:
    """Copy the upload chunk by chunk to `directory` (never whole in memory), enforcing the limit.

    Django has already spooled anything over FILE_UPLOAD_MAX_MEMORY_SIZE to a temp file; the
    size is re-checked while copying because a chunked request has no Content-Length.
    """
    limit = settings.MLAPI_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise PayloadTooLarge(f"The file is larger than the limit of {limit} bytes.")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "upload"
    written = 0
    with path.open("wb") as out:
        for chunk in upload.chunks():
            written += len(chunk)
            if written > limit:
                raise PayloadTooLarge(f"The file is larger than the limit of {limit} bytes.")
            out.write(chunk)
    return path


def _sniff_format(head: bytes) -> str:
    return JSONL if head.lstrip()[:1] in (b"{", b"[") else CSV


def _check_not_binary(head: bytes) -> None:
    if not head.strip():
        raise InvalidJobInput("The file is empty.")
    if b"\x00" in head:
        raise InvalidJobInput("The file is binary, not UTF-8 text (CSV or JSON Lines).")


def open_text(path: Path) -> io.TextIOWrapper:
    """The file as strict UTF-8 text (a leading BOM is dropped), universal newlines for csv."""
    return path.open("r", encoding="utf-8-sig", errors="strict", newline="")


def check_header(header: list[str], features: list[str]) -> list[str]:
    """The CSV header's column names; refuse missing, unknown and duplicate columns."""
    columns = [name.strip() for name in header]
    if len(columns) == 1 and any(d in columns[0] for d in OTHER_DELIMITERS):
        raise InvalidJobInput("The header has one column: CSV files must be comma-separated.")
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    unknown = [c for c in columns if c not in features]
    missing = [f for f in features if f not in columns]
    problems = []
    if duplicates:
        problems.append(f"duplicate columns: {', '.join(duplicates)}")
    if unknown:
        problems.append(f"unknown columns: {', '.join(unknown)}")
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if problems:
        expected = ", ".join(features)
        raise InvalidJobInput(
            f"The header does not match the model ({expected}): " + "; ".join(problems) + "."
        )
    return columns


def _count_csv(path: Path, features: list[str]) -> tuple[list[str], int]:
    with open_text(path) as handle:
        reader = csv.reader(handle)
        header = next((row for row in reader if row), None)
        if header is None:
            raise InvalidJobInput("The file is empty.")
        columns = check_header(header, features)
        rows = sum(1 for row in reader if row)
    if rows == 0:
        raise InvalidJobInput("The file has a header row but no data rows.")
    return columns, rows


def _count_jsonl(path: Path) -> int:
    rows = 0
    with open_text(path) as handle:
        for line in handle:
            if not line.strip():
                continue
            if rows == 0:
                try:
                    first = orjson.loads(line)
                except orjson.JSONDecodeError:
                    first = None
                if not isinstance(first, dict):
                    raise InvalidJobInput("The first line is not a JSON object: not JSON Lines.")
            rows += 1
    if rows == 0:
        raise InvalidJobInput("The file is empty.")
    return rows


def inspect_input(*, path: Path, declared_format: str | None, features: list[str]) -> StoredInput:
    """Check a stored file as a whole and count its rows; rename it `input.<format>`."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    _check_not_binary(head)
    input_format = declared_format or _sniff_format(head)
    try:
        if input_format == CSV:
            columns, rows = _count_csv(path, features)
        else:
            columns, rows = list(features), _count_jsonl(path)
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start : exc.start + 1].hex().upper()
        raise InvalidJobInput(f"The file is not UTF-8 text (undecodable byte 0x{byte}).") from exc
    except csv.Error as exc:
        raise InvalidJobInput(f"The file is not readable CSV: {exc}.") from exc
    final = path.with_name(f"input.{input_format}")
    path.replace(final)
    return StoredInput(path=final, input_format=input_format, columns=columns, rows=rows)


def write_instances(*, instances: list, features: list[str], directory: Path) -> StoredInput:
    """Store inline JSON instances as JSON Lines; arrays in schema order become objects."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"input.{JSONL}"
    with path.open("wb") as out:
        for instance in instances:
            if isinstance(instance, list) and len(instance) == len(features):
                instance = dict(zip(features, instance, strict=True))
            out.write(orjson.dumps(instance) + b"\n")
    return StoredInput(path=path, input_format=JSONL, columns=list(features), rows=len(instances))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return orjson.dumps(value).decode() if not isinstance(value, float) else repr(value)
    return orjson.dumps(value).decode()


def _csv_records(handle: Iterable[str], columns: list[str]) -> Iterator[list[str]]:
    reader = csv.reader(handle)
    next((row for row in reader if row), None)  # the header
    return (row for row in reader if row)


def _jsonl_records(handle: Iterable[str], columns: list[str]) -> Iterator[Record]:
    width = len(columns)
    for line in handle:
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield Record([""] * width, None, f"line is not valid JSON: {exc}")
            continue
        if not isinstance(value, dict):
            yield Record([""] * width, None, "line is not a JSON object")
            continue
        yield Record([_cell(value.get(c)) for c in columns], value)


def iter_records(
    handle: Iterable[str], input_format: str, columns: list[str]
) -> Iterator[list[str]] | Iterator[Record]:
    """Every non-blank row of an input file, in order.

    CSV rows come as the csv module's lists of cells (possibly ragged: the scorer checks
    their width), JSON Lines rows as `Record`s. Plain lists keep the hot path free of one
    object per row, which measurably mattered for million-row files.
    """
    if input_format == CSV:
        return _csv_records(handle, columns)
    return _jsonl_records(handle, columns)
