"""Batch-job routes, included under /api/v1/ by predictions/urls.py."""

from django.urls import path

from predictions.jobs import views

urlpatterns = [
    path("jobs", views.JobListView.as_view(), name="job-list"),
    path("jobs/<uuid:job_id>", views.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<uuid:job_id>/results", views.JobResultsView.as_view(), name="job-results"),
    path("jobs/<uuid:job_id>/cancel", views.JobCancelView.as_view(), name="job-cancel"),
]
