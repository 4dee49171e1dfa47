"""Running a batch job in a worker: claim a chunk, score it, commit it, until none is left.

Any number of workers run the same job at once: each copy of the job's task loops over
`leases.claim_chunk` (see leases.py for why every row lands exactly once whatever dies). When no
chunk is left to claim but other workers still hold some, the loop waits for them, taking over
any lease that runs out (a worker that was killed). The worker whose commit completes the job,
or that finds it cancelled or failed, finishes it: it concatenates the committed parts in chunk
order under a header into `results.csv` (streamed, a multipart upload on S3), records the final
state and refunds what was not processed, under the job's finishing lease.

The object store going away for a moment is not the job's failure: reads and writes are retried
with backoff, and a chunk that still cannot be done is released for a later try (housekeeping
publishes the job again). Anything else that goes wrong with a chunk fails the job cleanly.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from django.db import transaction
from django.utils import timezone

from predictions import storage
from predictions.inference import get_predictor
from predictions.jobs import leases, parsing, publishing
from predictions.jobs.events import emit_job_finished
from predictions.jobs.leases import Commit
from predictions.jobs.refunds import refund_unprocessed_rows
from predictions.jobs.scoring import score_chunk
from predictions.models import BatchJob, JobChunk, JobStatus

logger = logging.getLogger("mlapi.jobs")

RESULTS_NAME = "results.csv"
STORAGE_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)  # about 16 s of retries per operation
WAIT_POLL_S = 0.1  # while other workers finish the job's last chunks
T = TypeVar("T")


@contextlib.contextmanager
def long_lived_objects_frozen() -> Iterator[None]:
    """Keep the garbage collector off the process's long-lived objects while a job runs.

    A chunk allocates tens of thousands of short-lived containers, which triggers full
    collections that each walk every object of Django, NumPy and the loaded model: measured,
    that was 70% of a job's time. The process's objects are frozen for the job and unfrozen
    after it (whatever garbage gets frozen is collected normally once unfrozen).
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def with_storage_retries(operation: Callable[[], T], what: str) -> T:
    """Run `operation`, retrying while the object store is unavailable; re-raise at the end."""
    for delay in (*STORAGE_BACKOFF_S, None):
        try:
            return operation()
        except storage.StorageUnavailable:
            if delay is None:
                raise
            logger.warning("object storage unavailable during %s; retrying in %ss", what, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def job_prefix(job_id) -> str:
    return f"jobs/{job_id}"


def _score(job: BatchJob, predictor: Any, chunk: JobChunk) -> tuple[str, int]:
    """Score one chunk into its part object; return (part key, failed rows)."""
    rows = parsing.read_chunk(chunk.input, job.input_format, job.columns)
    csv_columns = job.columns if job.input_format == parsing.CSV else None
    lines = io.StringIO()
    failed = score_chunk(predictor, rows, csv.writer(lines), csv_columns=csv_columns)
    part = f"{job_prefix(job.pk)}/parts/{chunk.index:06d}-{chunk.attempts}.csv"
    storage.put_bytes(part, lines.getvalue().encode("utf-8"))
    return part, failed


def _process(job: BatchJob, predictor: Any, chunk: JobChunk) -> Commit | None:
    """Score and commit one leased chunk; None when the store stayed down (lease released)."""
    try:
        part, failed = with_storage_retries(lambda: _score(job, predictor, chunk), "a chunk")
    except storage.StorageUnavailable:
        leases.release_chunk(chunk=chunk)
        return None
    outcome = leases.commit_chunk(chunk=chunk, part=part, rows_failed=failed)
    if outcome is not Commit.COMMITTED:
        with contextlib.suppress(storage.StorageUnavailable):
            storage.delete(part)  # never referenced: the chunk's committed part is another
    return outcome


def write_results(*, job: BatchJob) -> str:
    """Stream the committed parts, in chunk order, under a header into the results object."""
    parts = JobChunk.objects.filter(job=job, done=True).order_by("index")
    key = f"{job_prefix(job.pk)}/{RESULTS_NAME}"
    with storage.open_write(key) as out:
        header = io.StringIO()
        csv.writer(header).writerow([*job.columns, "prediction", "error"])
        out.write(header.getvalue().encode("utf-8"))
        for part in parts.values_list("part", flat=True).iterator():
            for block in storage.iter_read(storage.open_read(part)):
                out.write(block)
    return key


def _final_status(job: BatchJob) -> str | None:
    if job.error:
        return JobStatus.FAILED
    if job.cancel_requested:
        return JobStatus.CANCELLED
    return JobStatus.SUCCEEDED if job.rows_done >= job.rows_total else None


def finish_job(*, job_id) -> bool:
    """Write the results and record the final state, once; False if it is not time yet."""
    if not leases.claim_finalization(job_id=job_id):
        return False
    try:
        job = BatchJob.objects.get(pk=job_id)
        status = _final_status(job)
        if status is None:
            return False
        results = ""
        if job.rows_done:
            results = with_storage_retries(lambda: write_results(job=job), "the results")
        with transaction.atomic():  # the final state and its refund are seen together
            flipped = BatchJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
                status=status, finished_at=timezone.now(), results_path=results
            )
            if flipped and status != JobStatus.SUCCEEDED:
                refund_unprocessed_rows(job=job)
            if flipped:  # job.succeeded / job.failed webhooks, in the same transaction
                job.refresh_from_db()
                emit_job_finished(job=job)
        if flipped and status == JobStatus.SUCCEEDED:
            _drop_intermediates(job)
        return bool(flipped)
    except storage.StorageUnavailable:
        logger.warning("job %s: results not written, object storage unavailable", job_id)
        return False
    finally:
        leases.release_finalization(job_id=job_id)


def _drop_intermediates(job: BatchJob) -> None:
    """After success only the results are kept: input chunks and parts go (best effort)."""
    with contextlib.suppress(storage.StorageUnavailable):
        for folder in ("input", "parts"):
            storage.delete_prefix(f"{job_prefix(job.pk)}/{folder}")


def _start(job: BatchJob) -> bool:
    """Mark the job running (if it was queued); False if it is finished or stopping."""
    BatchJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED, cancel_requested=False).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    job.refresh_from_db()
    return job.status == JobStatus.RUNNING


def _work(job: BatchJob, predictor: Any, owner: str) -> None:
    """Claim, score and commit chunks until the job is complete, stopped or out of reach."""
    invited = False
    while True:
        state = BatchJob.objects.filter(pk=job.pk).values("status", "cancel_requested").first()
        if state is None or state["status"] != JobStatus.RUNNING:
            return
        if state["cancel_requested"]:
            finish_job(job_id=job.pk)
            return
        chunk = leases.claim_chunk(job_id=job.pk, owner=owner)
        if chunk is None:
            if not leases.has_pending_chunks(job.pk):
                finish_job(job_id=job.pk)
                return
            time.sleep(WAIT_POLL_S)  # the rest is leased: wait, take over any lease that lapses
            continue
        if not invited:  # more chunks than takers so far: ask one more worker to join
            invited = True
            if leases.has_claimable_chunks(job.pk):
                publishing.invite_another_worker(job.pk)
        if _process(job, predictor, chunk) is None:
            return  # the store is down: the chunk is released, housekeeping republishes


def run_batch_job(*, job_id: str) -> None:
    """The task body: work on one job (with whichever other workers are on it) until done."""
    job = BatchJob.objects.filter(pk=job_id).select_related("model_version__model").first()
    if job is None or job.is_finished:
        return
    if not _start(job):
        return
    try:
        predictor = with_storage_retries(lambda: _load_predictor(job), "loading the model")
        with long_lived_objects_frozen():
            _work(job, predictor, leases.worker_id())
    except storage.StorageUnavailable:  # still down after the retries: not the job's fault
        logger.warning("job %s paused: object storage unavailable", job.pk)
    except Exception as exc:  # a job fails cleanly, the worker lives on
        logger.exception("job %s failed", job.pk)
        leases.stop_job(job_id=job.pk, error=_describe(exc))
        finish_job(job_id=job.pk)


def _load_predictor(job: BatchJob) -> Any:
    """The job's model; an artifact the store cannot serve right now is StorageUnavailable (a
    retry, not a failure: see predictions.inference)."""
    version = job.model_version
    return get_predictor(version.model.name, version.version)


def _describe(exc: Exception) -> str:
    detail = getattr(exc, "detail", None)
    return (
        str(detail) if detail else f"Internal error while running the job ({type(exc).__name__})."
    )
