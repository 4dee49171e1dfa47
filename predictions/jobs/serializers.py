"""Batch-job serializers: translation only (input checks, output shape); no workflow here."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from mlapi import fields
from predictions.models import BatchJob


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
    """A job as clients see it; `error` and `results_url` only when there is something to say."""

    model = serializers.CharField(source="model_version.model.name")
    version = serializers.CharField(source="model_version.version")
    progress = serializers.SerializerMethodField()

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
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_progress(self, job: BatchJob) -> float:
        """Fraction of rows processed, 0.0 to 1.0."""
        return round(job.rows_done / job.rows_total, 4) if job.rows_total else 0.0

    def to_representation(self, job: BatchJob) -> dict:
        data = super().to_representation(job)
        if job.error:
            data["error"] = job.error
        if job.results_path:
            path = reverse("predictions:job-results", kwargs={"job_id": job.pk})
            request = self.context.get("request")
            data["results_url"] = request.build_absolute_uri(path) if request else path
        return data
