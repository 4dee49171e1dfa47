"""Running a batch job in a worker: chunk by chunk, resumable, every row exactly once.

Crash safety. Each chunk's results go to a part file named after the chunk's first row
(`parts/<start>.csv`), written to a temporary name, fsynced and renamed; only then is the job's
progress advanced with a compare-and-set (`rows_done == start`). A worker that dies anywhere
leaves a job whose committed progress matches the part files up to `rows_done`; the next run
deletes any part at or past `rows_done` (written, never committed) and resumes from there.
A per-job `flock` makes runs exclusive: the kernel drops it when its holder dies (even on
SIGKILL), which is also how `recover_orphaned_jobs` tells a dead run from a live one.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import gc
import io
import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from predictions.inference import get_predictor
from predictions.jobs import parsing
from predictions.jobs.events import emit_job_finished
from predictions.jobs.scoring import score_chunk
from predictions.jobs.services import job_dir, refund_unprocessed_rows
from predictions.models import BatchJob, JobStatus

logger = logging.getLogger("mlapi.jobs")

RESULTS_NAME = "results.csv"


@contextlib.contextmanager
def job_lock(directory: Path) -> Iterator[bool]:
    """Hold the job's exclusive lock if nobody else does; yield whether we got it."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def is_locked(directory: Path) -> bool:
    """Whether a live process is running the job right now."""
    if not (directory / "lock").exists():
        return False
    with job_lock(directory) as acquired:
        return not acquired


@contextlib.contextmanager
def long_lived_objects_frozen() -> Iterator[None]:
    """Keep the garbage collector off the process's long-lived objects while a job runs.

    A chunk allocates tens of thousands of short-lived containers, which triggers full
    collections that each walk every object of Django, NumPy and the loaded model: measured,
    that was 70% of a job's time. The process's objects are frozen for
    the job and unfrozen after it. (No collection first: it costs a second in a loaded worker,
    and whatever garbage gets frozen is collected normally once unfrozen.)
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _part_path(parts: Path, start: int) -> Path:
    return parts / f"{start:012d}.csv"


def _committed_parts(parts: Path, rows_done: int) -> list[Path]:
    return sorted(p for p in parts.glob("*.csv") if int(p.stem) < rows_done)


def _drop_uncommitted_parts(parts: Path, rows_done: int) -> None:
    for path in parts.glob("*"):
        if not path.stem.isdigit() or int(path.stem) >= rows_done or path.suffix != ".csv":
            path.unlink(missing_ok=True)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def _read_columns(job: BatchJob, features: list[str]) -> list[str]:
    if job.input_format != parsing.CSV:
        return list(features)
    with parsing.open_text(Path(settings.DATA_DIR) / job.input_path) as handle:
        header = next((row for row in csv.reader(handle) if row), [])
    return [name.strip() for name in header]


def write_results(*, job: BatchJob, columns: list[str]) -> str:
    """Concatenate the committed parts under a header into results.csv; return its path."""
    directory = job_dir(job.id)
    parts = _committed_parts(directory / "parts", job.rows_done)
    final = directory / RESULTS_NAME
    tmp = directory / (RESULTS_NAME + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerow([*columns, "prediction", "error"])
        out.flush()
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(1 << 20):
                    out.buffer.write(block)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(final)
    return str(final.relative_to(settings.DATA_DIR))


def _finish(job: BatchJob, status: str, columns: list[str], error: str = "") -> None:
    """Write the results, then record the final state and any refund in one transaction."""
    results_path = write_results(job=job, columns=columns) if job.rows_done else ""
    with transaction.atomic():
        BatchJob.objects.filter(pk=job.pk).update(
            status=status, error=error[:2000], finished_at=timezone.now(), results_path=results_path
        )
        job.refresh_from_db()
        if status != JobStatus.SUCCEEDED:
            refund_unprocessed_rows(job=job)
        emit_job_finished(job=job)


def _process(job: BatchJob) -> None:
    version = job.model_version
    predictor = get_predictor(version.model.name, version.version)
    features = [feature["name"] for feature in predictor.schema]
    columns = _read_columns(job, features)
    csv_columns = columns if job.input_format == parsing.CSV else None
    parts = job_dir(job.id) / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    _drop_uncommitted_parts(parts, job.rows_done)
    start = job.rows_done
    chunk_rows = settings.MLAPI_JOB_CHUNK_ROWS
    with parsing.open_text(Path(settings.DATA_DIR) / job.input_path) as handle:
        records = itertools.islice(
            parsing.iter_records(handle, job.input_format, columns), start, None
        )
        while chunk := list(itertools.islice(records, chunk_rows)):
            lines = io.StringIO()
            failed = score_chunk(predictor, chunk, csv.writer(lines), csv_columns=csv_columns)
            _write_durably(_part_path(parts, start), lines.getvalue().encode("utf-8"))
            advanced = BatchJob.objects.filter(
                pk=job.pk, rows_done=start, status=JobStatus.RUNNING, cancel_requested=False
            ).update(rows_done=F("rows_done") + len(chunk), rows_failed=F("rows_failed") + failed)
            job.refresh_from_db()
            if not advanced:
                if job.cancel_requested and job.status == JobStatus.RUNNING:
                    _finish(job, JobStatus.CANCELLED, columns)
                return  # cancelled, or taken over: nothing more for this run
            start += len(chunk)
    _finish(job, JobStatus.SUCCEEDED, columns)


def run_batch_job(*, job_id: str) -> None:
    """The task body: run (or resume) one job unless it is finished or running elsewhere."""
    job = BatchJob.objects.filter(pk=job_id).select_related("model_version__model").first()
    if job is None or job.is_finished:
        return
    with job_lock(job_dir(job.id)) as acquired:
        if not acquired:
            logger.info("job %s is running in another process", job.id)
            return
        job.refresh_from_db()
        if job.is_finished:
            return
        if job.cancel_requested:
            _finish(job, JobStatus.CANCELLED, _safe_columns(job))
            return
        BatchJob.objects.filter(pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
            status=JobStatus.RUNNING, started_at=job.started_at or timezone.now()
        )
        job.refresh_from_db()
        try:
            with long_lived_objects_frozen():
                _process(job)
        except Exception as exc:  # a job fails cleanly, the worker lives on
            logger.exception("job %s failed", job.id)
            job.refresh_from_db()
            _finish(job, JobStatus.FAILED, _safe_columns(job), _describe(exc))


def _safe_columns(job: BatchJob) -> list[str]:
    try:
        features = [f["name"] for f in job.model_version.input_schema.get("features", [])]
        return _read_columns(job, features)
    except Exception:  # noqa: BLE001 - the input itself may be what broke
        return []


def _describe(exc: Exception) -> str:
    detail = getattr(exc, "detail", None)
    return (
        str(detail) if detail else f"Internal error while running the job ({type(exc).__name__})."
    )
