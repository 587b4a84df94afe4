from django.contrib import admin
from django.urls import include, path

from accounts import token_views
from bulkops.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("auth/token", token_views.token, name="token"),
    path(
        ".well-known/smart-configuration",
        token_views.smart_configuration,
        name="smart-configuration",
    ),
    path("fhir/", include("exports.fhir_urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
]
