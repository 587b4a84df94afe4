"""Console pages of accounts; bulkops/urls.py joins them with the other apps' into the
"console" namespace."""

from django.urls import path

import accounts.api_urls  # noqa: F401 - registers the cid path converter
from accounts import api_token_views, client_views, operator_views, views

urlpatterns = [
    path("audit/", views.audit_trail, name="audit-trail"),
    path("audit/export.csv", views.audit_csv, name="audit-csv"),
    path("operators/", operator_views.operator_list, name="operator-list"),
    path("operators/new/", operator_views.operator_create, name="operator-create"),
    path("operators/<int:user_id>/", operator_views.operator_detail, name="operator-detail"),
    path("operators/<int:user_id>/role/", operator_views.operator_set_role, name="operator-role"),
    path(
        "operators/<int:user_id>/deactivate/",
        operator_views.operator_set_status,
        {"action": "deactivate"},
        name="operator-deactivate",
    ),
    path(
        "operators/<int:user_id>/reactivate/",
        operator_views.operator_set_status,
        {"action": "reactivate"},
        name="operator-reactivate",
    ),
    path(
        "operators/<int:user_id>/reset-password/",
        operator_views.operator_password_reset,
        name="operator-password-reset",
    ),
    path("profile/", operator_views.profile, name="profile"),
    path("tokens/", api_token_views.api_tokens, name="api-tokens"),
    path(
        "tokens/<int:token_id>/revoke/",
        api_token_views.api_token_revoke,
        name="api-token-revoke",
    ),
    path("clients/", client_views.client_list, name="client-list"),
    path("clients/new/", client_views.client_register, name="client-register"),
    path("clients/check-keys/", client_views.client_keys_check, name="client-keys-check"),
    path("clients/scope-preview/", client_views.client_scope_preview, name="client-scope-preview"),
    path("clients/<cid:client_id>/", client_views.client_detail, name="client-detail"),
    path("clients/<cid:client_id>/edit/", client_views.client_edit, name="client-edit"),
    path("clients/<cid:client_id>/keys/", client_views.client_key_add, name="client-key-add"),
    path(
        "clients/<cid:client_id>/keys/retire/",
        client_views.client_key_retire,
        name="client-key-retire",
    ),
    path(
        "clients/<cid:client_id>/disable/",
        client_views.client_set_status,
        {"action": "disable"},
        name="client-disable",
    ),
    path(
        "clients/<cid:client_id>/enable/",
        client_views.client_set_status,
        {"action": "enable"},
        name="client-enable",
    ),
]
