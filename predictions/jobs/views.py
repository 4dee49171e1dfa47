"""Batch-job endpoints (data plane: API key or JWT). Thin: validate, call a service, serialize."""

from __future__ import annotations

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response

from keys.views import MeteredAPIView
from mlapi.pagination import PageNumberPagination
from predictions import dataplane
from predictions.jobs import services
from predictions.jobs.serializers import JobSerializer, JobSubmitSerializer
from predictions.models import BatchJob
from predictions.serializers import problems

JOB = {(200, "application/json"): JobSerializer}


class JobAPIView(MeteredAPIView):
    """Base of the job views: one rate token per request; jobs of the caller only."""

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        dataplane.authorize(self.meter, scope=dataplane.JOBS)

    def get_job(self, request, job_id) -> BatchJob:
        """The caller's job; another subscriber's job is indistinguishable from none (404)."""
        from django.http import Http404

        dataplane.check_key_restrictions(self.meter, scope=dataplane.JOBS, model=None)
        job = (
            BatchJob.objects.for_subscription(request.auth.subscription_id)
            .select_related("model_version__model")
            .filter(pk=job_id)
            .first()
        )
        if job is None:
            raise Http404("No such job.")
        return job


class JobListView(JobAPIView):
    """GET: the caller's jobs, newest first (paginated). POST: submit a job (202)."""

    parser_classes = [MultiPartParser, JSONParser]
    pagination_class = PageNumberPagination  # also tells the OpenAPI document it is paginated

    @extend_schema(operation_id="api_v1_jobs_list", responses=JobSerializer(many=True))
    def get(self, request):
        dataplane.check_key_restrictions(self.meter, scope=dataplane.JOBS, model=None)
        jobs = (
            BatchJob.objects.for_subscription(request.auth.subscription_id)
            .select_related("model_version__model")
            .order_by("-created_at")
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(jobs, request, view=self)
        data = JobSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        request=JobSubmitSerializer,
        responses={(202, "application/json"): JobSerializer} | problems(404),  # unknown model
    )
    def post(self, request):
        serializer = JobSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = dataplane.submit_job(
            self.meter,
            model_name=data["model"],
            version=data.get("version") or None,
            upload=data.get("file"),
            instances=data.get("instances"),
        )
        body = JobSerializer(job, context={"request": request}).data
        location = request.build_absolute_uri(
            reverse("predictions:job-detail", kwargs={"job_id": job.pk})
        )
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class JobDetailView(JobAPIView):
    """GET: one job's status and progress (`results_url` once results exist)."""

    @extend_schema(responses=JOB)
    def get(self, request, job_id):
        job = self.get_job(request, job_id)
        return Response(JobSerializer(job, context={"request": request}).data)


class JobResultsView(JobAPIView):
    """GET: the results CSV (input columns + prediction + error), streamed from storage."""

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.BINARY} | problems(409))
    def get(self, request, job_id):
        job = self.get_job(request, job_id)
        return FileResponse(
            services.open_results(job=job),
            as_attachment=True,
            filename=f"job-{job.pk}.csv",
            content_type="text/csv; charset=utf-8",
        )


class JobCancelView(JobAPIView):
    """POST: cancel (queued: at once; running: before its next chunks). 409 once finished."""

    @extend_schema(request=None, responses=JOB | problems(409))
    def post(self, request, job_id):
        job = services.cancel_batch_job(job=self.get_job(request, job_id))
        return Response(JobSerializer(job, context={"request": request}).data)
