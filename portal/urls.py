"""Portal routes."""

from django.urls import path
from django.views.generic import TemplateView

app_name = "portal"

urlpatterns = [
    path("", TemplateView.as_view(template_name="portal/landing.html"), name="landing"),
    path("", TemplateView.as_view(template_name="portal/landing.html"), name="dashboard"),
    path("", TemplateView.as_view(template_name="portal/landing.html"), name="login"),
]
