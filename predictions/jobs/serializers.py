"""Batch-job serializers: translation only (input checks, output shape); no workflow here."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from rest_framework import serializers

from mlapi import fields
from predictions.jobs import leases
from predictions.models import BatchJob, JobStatus


class JobSubmitSerializer(serializers.Serializer):
    """`model` (+ optional `version`) and either an uploaded `file` or inline `instances`."""

    model = fields.SlugField(max_length=64)
    version = fields.CharField(max_length=32, required=False, allow_blank=True)
    file = serializers.FileField(required=False, allow_empty_file=True)
    instances = serializers.ListField(child=serializers.JSONField(), required=False)

    def validate(self, attrs: dict) -> dict:
        has_file, has_instances = "file" in attrs, "instances" in attrs
        if has_file == has_instances:
            raise serializers.ValidationError(
                {"file": ["give either a file (multipart) or instances (JSON), not both"]}
                if has_file
                else {"file": ["a file (multipart) or instances (JSON) is required"]}
            )
        return attrs


class JobSerializer(serializers.ModelSerializer):
    """A job as clients see it; `error` and `results_url` only when there is something to say.

    Beyond the contract's members: `progress` (0..1), `rows_per_second` (rows processed per
    second since the job started; null before), `eta_seconds` (the rest at that pace; 0 once
    finished, null while unknown), `chunks_total` and `workers` (workers holding a chunk now).
    """

    model = serializers.CharField(source="model_version.model.name")
    version = serializers.CharField(source="model_version.version")
    progress = serializers.SerializerMethodField()
    rows_per_second = serializers.SerializerMethodField()
    eta_seconds = serializers.SerializerMethodField()
    workers = serializers.SerializerMethodField()

    class Meta:
        model = BatchJob
        fields = [
            "id",
            "status",
            "model",
            "version",
            "input_format",
            "original_filename",
            "rows_total",
            "rows_done",
            "rows_failed",
            "progress",
            "rows_per_second",
            "eta_seconds",
            "chunks_total",
            "workers",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_progress(self, job: BatchJob) -> float:
        """Fraction of rows processed, 0.0 to 1.0."""
        return round(job.rows_done / job.rows_total, 4) if job.rows_total else 0.0

    def get_rows_per_second(self, job: BatchJob) -> float | None:
        """Rows processed per second of the job's run so far (or of its whole run)."""
        if job.started_at is None or not job.rows_done:
            return None
        elapsed = ((job.finished_at or timezone.now()) - job.started_at).total_seconds()
        return round(job.rows_done / max(elapsed, 1e-3), 1)

    def get_eta_seconds(self, job: BatchJob) -> float | None:
        """Seconds until the last row at the current pace: 0 once finished, null if unknown."""
        if job.is_finished:
            return 0.0
        rate = self.get_rows_per_second(job)
        return round((job.rows_total - job.rows_done) / rate, 1) if rate else None

    def get_workers(self, job: BatchJob) -> int:
        """Workers holding a live lease on one of the job's chunks right now."""
        return leases.live_workers(job.pk) if job.status == JobStatus.RUNNING else 0

    def to_representation(self, job: BatchJob) -> dict:
        data = super().to_representation(job)
        if job.error:
            data["error"] = job.error
        if job.results_path:
            path = reverse("predictions:job-results", kwargs={"job_id": job.pk})
            request = self.context.get("request")
            data["results_url"] = request.build_absolute_uri(path) if request else path
        return data
