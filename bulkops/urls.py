from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import token_views
from accounts.api_urls import urlpatterns as accounts_api
from accounts.urls import urlpatterns as accounts_console
from bulkops.api import api_not_found
from bulkops.health import healthz
from console.urls import urlpatterns as dashboard
from exports.api_urls import urlpatterns as exports_api
from exports.fhir_urls import urlpatterns as export_fhir
from exports.urls import urlpatterns as exports_console
from fhirstore.api_urls import urlpatterns as store_api
from fhirstore.fhir_urls import urlpatterns as store_fhir
from fhirstore.urls import urlpatterns as store_console
from remotes.public_jwks import published_jwks
from schedules.api_urls import urlpatterns as schedules_api
from schedules.urls import urlpatterns as schedules_console
from submissions.fhir_urls import urlpatterns as submit_fhir
from transfers.api_urls import urlpatterns as transfers_api
from transfers.fhir_urls import urlpatterns as delivery_fhir

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("auth/token", token_views.token, name="token"),
    path(
        ".well-known/smart-configuration",
        token_views.smart_configuration,
        name="smart-configuration",
    ),
    path("fhir/", include(([*export_fhir, *submit_fhir, *delivery_fhir, *store_fhir], "fhir"))),
    # Our public key set for one remote, for its jwks_uri registration: no sign-in.
    path("jwks/<uuid:jwks_id>.json", published_jwks, name="remote-public-jwks"),
    path("remotes/", include("remotes.check_urls")),
    path(
        "api/v1/",
        include(([*accounts_api, *store_api, *exports_api, *transfers_api, *schedules_api], "api")),
    ),
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
    path("remotes/", include("remotes.urls")),
    path("transfers/", include("transfers.urls")),
    # The console's pages of every app, and the dashboard above them, in one namespace.
    path(
        "",
        include(
            (
                [
                    *accounts_console,
                    *store_console,
                    *exports_console,
                    *schedules_console,
                    *dashboard,
                ],
                "console",
            )
        ),
    ),
]
