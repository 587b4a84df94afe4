from django.contrib import admin
from django.urls import include, path

from bulkops.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("fhir/", include("exports.fhir_urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
]
