"""URLs under /fhir/: the FHIR bulk API."""

from django.urls import path

from accounts import token_views

app_name = "fhir"

urlpatterns = [
    # Discovery needs no token (spec §7.1); the document is the same as at the root.
    path(
        ".well-known/smart-configuration",
        token_views.smart_configuration,
        name="smart-configuration",
    ),
]
