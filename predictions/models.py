"""The model registry (models and their versions) and batch prediction jobs."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class Task(models.TextChoices):
    CLASSIFICATION = "classification", "Classification"
    REGRESSION = "regression", "Regression"


class Runtime(models.TextChoices):
    ONNX = "onnx", "ONNX Runtime"
    SKLEARN = "sklearn", "scikit-learn"


class MLModel(models.Model):
    """A named model in the registry; unpinned predictions follow its rollout.

    The rollout is the default version (`ModelVersion.is_default`), an optional canary that
    answers `canary_percent` % of the callers (sticky per caller), and an optional shadow that
    also scores `shadow_percent` % of the requests off the request path. `rollout_revision`
    counts rollout changes (shown to operators; see predictions.rollout for the hashing).
    """

    name = models.SlugField(max_length=64, unique=True)
    task = models.CharField(max_length=20, choices=Task.choices)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    canary_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    canary_percent = models.FloatField(default=0)
    shadow_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    shadow_percent = models.FloatField(default=0)
    rollout_revision = models.PositiveIntegerField(default=0)
    rollout_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "model"
        constraints = [
            models.CheckConstraint(
                condition=Q(canary_percent__gte=0, canary_percent__lte=100),
                name="canary_percent_0_100",
            ),
            models.CheckConstraint(
                condition=Q(shadow_percent__gte=0, shadow_percent__lte=100),
                name="shadow_percent_0_100",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """One trained artifact of a model, with its input schema and the runtime that serves it.

    `input_schema` is `{"features": [{"name", "type": "number"|"category", "minimum"?,
    "maximum"?, "categories"?}]}` in the order the estimator expects; `output` describes the
    prediction (`{"type": "label", "classes": [...]}` or `{"type": "number", "unit"?}`).
    `artifact` is a skops file (never a pickle); `sha256` is verified on every load.
    """

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=32)
    artifact = models.CharField(
        max_length=500, help_text="Path of the skops file, relative to MLAPI_DATA_DIR."
    )
    sha256 = models.CharField(max_length=64)
    onnx_artifact = models.CharField(max_length=500, blank=True)
    onnx_sha256 = models.CharField(max_length=64, blank=True)
    runtime = models.CharField(max_length=10, choices=Runtime.choices, default=Runtime.SKLEARN)
    runtime_note = models.CharField(max_length=300, blank=True)
    input_schema = models.JSONField()
    output = models.JSONField(default=dict)
    metadata = models.JSONField(default=dict, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    description = models.TextField(blank=True)
    deprecated_at = models.DateTimeField(
        null=True, blank=True, help_text="Replies carry a Deprecation header (RFC 9745)."
    )
    sunset_at = models.DateTimeField(
        null=True, blank=True, help_text="Sunset header (RFC 8594); retired (404) after it."
    )

    class Meta:
        ordering = ["model__name", "-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(sunset_at__isnull=True)
                | Q(deprecated_at__isnull=False, sunset_at__gte=models.F("deprecated_at")),
                name="sunset_after_deprecation",
            ),
            models.UniqueConstraint(fields=["model", "version"], name="unique_model_version"),
            models.UniqueConstraint(
                fields=["model"], condition=Q(is_default=True), name="one_default_version_per_model"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.name}:{self.version}"

    def is_retired(self, now=None) -> bool:
        """Past its sunset: answers 404 and cannot be part of a rollout."""
        from django.utils import timezone

        return self.sunset_at is not None and self.sunset_at <= (now or timezone.now())


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class BatchJobQuerySet(models.QuerySet):
    def for_subscription(self, subscription_id: int) -> BatchJobQuerySet:
        """One subscriber's jobs (another subscriber's job is never visible: 404)."""
        return self.filter(subscription_id=subscription_id)

    def unfinished(self) -> BatchJobQuerySet:
        return self.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING])

    def expired(self, before) -> BatchJobQuerySet:
        """Finished jobs whose files are past retention (unfinished ones are never expired)."""
        return self.exclude(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).filter(
            created_at__lt=before
        )


class BatchJob(models.Model):
    """A file of rows scored asynchronously by a Celery worker, chunk by chunk."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(
        "keys.Subscription", on_delete=models.CASCADE, related_name="jobs"
    )
    api_key = models.ForeignKey(
        "keys.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="jobs")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    input_path = models.CharField(max_length=500)
    input_format = models.CharField(max_length=8)  # "csv" or "jsonl"
    original_filename = models.CharField(max_length=255, blank=True)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    results_path = models.CharField(max_length=500, blank=True)
    quota_period_start = models.DateTimeField(null=True, blank=True)
    quota_refunded = models.BooleanField(default=False)
    cancel_requested = models.BooleanField(default=False)
    # The CSV header as uploaded (JSON Lines: the schema's features): the results' columns.
    columns = models.JSONField(default=list, blank=True)
    chunks_total = models.PositiveIntegerField(default=0)
    # When its task was last published (housekeeping republishes lost messages from this).
    published_at = models.DateTimeField(null=True, blank=True)
    # The finishing step's lease: one worker writes the results; a dead one's lease runs out.
    finalizing_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = BatchJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["subscription", "-created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(rows_done__lte=models.F("rows_total")), name="job_rows_done_le_total"
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


class JobChunkQuerySet(models.QuerySet):
    def pending(self) -> JobChunkQuerySet:
        return self.filter(done=False)

    def claimable(self, now) -> JobChunkQuerySet:
        """Not done, and nobody holds a live lease on it."""
        return self.filter(done=False).filter(
            Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
        )


class JobChunk(models.Model):
    """A slice of a job's rows: leased by one worker at a time, committed exactly once.

    `input` is the object holding the slice's rows; `part` the object holding its results,
    set by the one commit that wins (see predictions/jobs/leases.py).
    """

    job = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    start_row = models.PositiveIntegerField()
    rows = models.PositiveIntegerField()
    input = models.CharField(max_length=300)
    done = models.BooleanField(default=False)
    rows_failed = models.PositiveIntegerField(default=0)
    part = models.CharField(max_length=300, blank=True)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    committed_at = models.DateTimeField(null=True, blank=True)

    objects = JobChunkQuerySet.as_manager()

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="one_chunk_per_index"),
            models.CheckConstraint(
                condition=Q(done=False) | ~Q(part=""), name="done_chunk_has_part"
            ),
        ]
        indexes = [models.Index(fields=["job", "done", "index"], name="chunk_claim_idx")]

    def __str__(self) -> str:
        return f"chunk {self.index} of job {self.job_id}"
