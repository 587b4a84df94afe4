from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import token_views
from accounts.api_urls import urlpatterns as accounts_api
from bulkops.api import api_not_found
from bulkops.health import healthz
from exports.api_urls import urlpatterns as exports_api
from remotes.public_jwks import published_jwks
from schedules.api_urls import urlpatterns as schedules_api

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("auth/token", token_views.token, name="token"),
    path(
        ".well-known/smart-configuration",
        token_views.smart_configuration,
        name="smart-configuration",
    ),
    path("fhir/", include("exports.fhir_urls")),
    # Our public key set for one remote, for its jwks_uri registration: no sign-in.
    path("jwks/<uuid:jwks_id>.json", published_jwks, name="remote-public-jwks"),
    path("remotes/", include("remotes.check_urls")),
    path("api/v1/", include(([*accounts_api, *exports_api, *schedules_api], "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script
    # (CSP). Swagger UI does add <style> elements, so this page alone allows those.
    path(
        "api/docs/",
        csp_update({"style-src": [SELF, UNSAFE_INLINE]})(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema")
        ),
        name="api-docs",
    ),
    re_path(r"^api/", api_not_found),
    path("accounts/", include("accounts.signin_urls")),
    path("admin/", admin.site.urls),
    path("remotes/", include("remotes.urls")),
    path("", include("accounts.urls")),
]
