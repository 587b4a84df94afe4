"""FHIR-side routes of deliveries, under /fhir/: what their receivers fetch."""

from django.urls import path

from transfers import offer_views

urlpatterns = [
    path(
        "deliveries/<uuid:delivery_uuid>/manifest.json",
        offer_views.delivery_manifest,
        name="delivery-manifest",
    ),
    path(
        "deliveries/<uuid:delivery_uuid>/files/<uuid:file_uuid>.ndjson",
        offer_views.delivery_file,
        name="delivery-file",
    ),
]
