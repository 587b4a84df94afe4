"""URLs under /fhir/: the FHIR bulk API."""

from django.urls import path  # noqa: F401 - filled by the views that follow

app_name = "fhir"

urlpatterns: list = []
