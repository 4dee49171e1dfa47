"""Quota refunds of batch jobs: the rows a job never processed go back, exactly once.

A job consumes `rows_total` units at submission. When it ends other than by succeeding (cancel,
failure) the rows it did not process are refunded; the `quota_refunded` flag is flipped with a
conditional UPDATE in the same transaction, so a refund can never happen twice. Callers make sure
`rows_done` can no longer move (see leases.py: a stopped job accepts no commit).
"""

from __future__ import annotations

from django.db import transaction

from keys import limits
from keys.models import Subscription
from keys.principal import Principal
from predictions.models import BatchJob


def refund_unprocessed_rows(*, job: BatchJob) -> int:
    """Give back the rows the job never processed, once; return how many were refunded."""
    with transaction.atomic():
        flipped = BatchJob.objects.filter(pk=job.pk, quota_refunded=False).update(
            quota_refunded=True
        )
        job.refresh_from_db(fields=["rows_done", "rows_total", "quota_period_start"])
        units = job.rows_total - job.rows_done
        if not flipped or units <= 0 or job.quota_period_start is None:
            return 0
        subscription = Subscription.objects.select_related("plan").get(pk=job.subscription_id)
        principal = Principal.for_subscription(subscription, key_id=job.api_key_id)
        limits.refund(principal=principal, units=units, period_start=job.quota_period_start)
    return units
