"""The site root: `/` sends people to the portal."""

from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="portal:landing", permanent=False), name="root"),
]
