"""Chunk leases in the database: how any number of workers share a job, every row once.

A job's rows are cut into `JobChunk`s at submission. A worker *claims* a chunk by taking its
lease (owner + expiry) in one short transaction — `SELECT ... FOR UPDATE SKIP LOCKED` on
PostgreSQL, the database write lock on SQLite — so two workers never get the same live lease.
It scores the chunk into a part object whose name carries the claim's attempt number, then
*commits*: one transaction that marks the chunk done (only if it is not done yet) and adds its
rows to the job (only while the job is running and not asked to stop). The first commit of a
chunk wins; a later one (a worker that lost its lease but lived on) changes nothing, and its
part is never referenced. A worker that dies leaves a lease that simply runs out
(MLAPI_JOB_LEASE_S), and any worker takes the chunk over.

Cancel and failure set `cancel_requested`, which every commit checks under the job row's lock:
once it is set no chunk can add rows, so `rows_total - rows_done` is exactly what to refund.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from enum import Enum

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from predictions.models import BatchJob, JobChunk, JobStatus


class Commit(Enum):
    """What became of a chunk's commit."""

    COMMITTED = "committed"
    DUPLICATE = "duplicate"  # another worker committed this chunk first
    STOPPED = "stopped"  # the job was cancelled, failed or finished meanwhile


def worker_id() -> str:
    """This process, as lease owners are named: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.MLAPI_JOB_LEASE_S)


def create_chunks(*, job: BatchJob, chunks: list) -> None:
    """The job's chunk rows, from the stored input's `InputChunk`s (inside the job's tx)."""
    JobChunk.objects.bulk_create(
        JobChunk(job=job, index=i, start_row=c.start_row, rows=c.rows, input=c.key)
        for i, c in enumerate(chunks)
    )


def claim_chunk(*, job_id, owner: str) -> JobChunk | None:
    """Lease the job's first chunk that is neither done nor leased; None when there is none."""
    now = timezone.now()
    with transaction.atomic():
        chunk = (
            JobChunk.objects.select_for_update(skip_locked=True)
            .claimable(now)
            .filter(job_id=job_id)
            .order_by("index")
            .first()
        )
        if chunk is None:
            return None
        chunk.lease_owner, chunk.lease_expires_at = owner, now + lease_duration()
        chunk.attempts += 1
        JobChunk.objects.filter(pk=chunk.pk).update(
            lease_owner=owner, lease_expires_at=chunk.lease_expires_at, attempts=chunk.attempts
        )
    return chunk


def release_chunk(*, chunk: JobChunk) -> None:
    """Give a lease back early (the store is down): any worker may claim the chunk again."""
    JobChunk.objects.filter(
        pk=chunk.pk, done=False, lease_owner=chunk.lease_owner, attempts=chunk.attempts
    ).update(lease_expires_at=None)


def commit_chunk(*, chunk: JobChunk, part: str, rows_failed: int) -> Commit:
    """Record the chunk's results (`part`) and advance the job, atomically and at most once."""
    with transaction.atomic():
        won = JobChunk.objects.filter(pk=chunk.pk, done=False).update(
            done=True,
            part=part,
            rows_failed=rows_failed,
            lease_expires_at=None,
            committed_at=timezone.now(),
        )
        if not won:
            return Commit.DUPLICATE
        advanced = BatchJob.objects.filter(
            pk=chunk.job_id, status=JobStatus.RUNNING, cancel_requested=False
        ).update(rows_done=F("rows_done") + chunk.rows, rows_failed=F("rows_failed") + rows_failed)
        if not advanced:
            transaction.set_rollback(True)
            return Commit.STOPPED
    return Commit.COMMITTED


def has_claimable_chunks(job_id) -> bool:
    return JobChunk.objects.claimable(timezone.now()).filter(job_id=job_id).exists()


def has_pending_chunks(job_id) -> bool:
    return JobChunk.objects.pending().filter(job_id=job_id).exists()


def has_live_lease(job_id) -> bool:
    """Whether some worker is on the job right now: it holds a chunk or the finishing step,
    or committed a chunk less than a lease period ago (it is about to claim the next)."""
    now = timezone.now()
    chunks = JobChunk.objects.filter(job_id=job_id)
    if chunks.filter(done=False, lease_expires_at__gt=now).exists():
        return True
    if chunks.filter(committed_at__gt=now - lease_duration()).exists():
        return True
    return BatchJob.objects.filter(pk=job_id, finalizing_until__gt=now).exists()


def live_workers(job_id) -> int:
    """How many workers hold a live lease on one of the job's chunks."""
    leases = JobChunk.objects.pending().filter(job_id=job_id, lease_expires_at__gt=timezone.now())
    return leases.values("lease_owner").distinct().count()


def stop_job(*, job_id, error: str = "") -> None:
    """Freeze a running job (no chunk commits any more); `error` makes it a failure."""
    fields = {"cancel_requested": True}
    if error:
        fields["error"] = error[:2000]
    BatchJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(**fields)


def claim_finalization(*, job_id) -> bool:
    """Take the job's finishing lease: only one worker writes the results at a time."""
    now = timezone.now()
    return bool(
        BatchJob.objects.filter(pk=job_id, status=JobStatus.RUNNING)
        .exclude(finalizing_until__gt=now)
        .update(finalizing_until=now + lease_duration())
    )


def release_finalization(*, job_id) -> None:
    BatchJob.objects.filter(pk=job_id).update(finalizing_until=None)
