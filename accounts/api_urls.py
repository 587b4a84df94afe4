from django.urls import path, register_converter

from accounts import api, operator_api
from bulkops.api import ClientIdConverter

register_converter(ClientIdConverter, "cid")

urlpatterns = [
    path("tokens/", api.ApiTokenListApi.as_view(), name="token-list"),
    path("tokens/create", api.ApiTokenCreateApi.as_view(), name="token-create"),
    path("tokens/<int:token_id>/revoke", api.ApiTokenRevokeApi.as_view(), name="token-revoke"),
    path("clients/", api.ClientListApi.as_view(), name="client-list"),
    path("clients/create", api.ClientCreateApi.as_view(), name="client-create"),
    path("clients/<cid:client_id>", api.ClientDetailApi.as_view(), name="client-detail"),
    path(
        "clients/<cid:client_id>/disable",
        api.ClientDisableApi.as_view(),
        name="client-disable",
    ),
    path("clients/<cid:client_id>/enable", api.ClientEnableApi.as_view(), name="client-enable"),
    path("clients/<cid:client_id>/update", api.ClientUpdateApi.as_view(), name="client-update"),
    path(
        "clients/<cid:client_id>/keys/add",
        api.ClientKeyAddApi.as_view(),
        name="client-key-add",
    ),
    path(
        "clients/<cid:client_id>/keys/retire",
        api.ClientKeyRetireApi.as_view(),
        name="client-key-retire",
    ),
    path("operators/", operator_api.OperatorListApi.as_view(), name="operator-list"),
    path("operators/create", operator_api.OperatorCreateApi.as_view(), name="operator-create"),
    path(
        "operators/<int:user_id>", operator_api.OperatorDetailApi.as_view(), name="operator-detail"
    ),
    path(
        "operators/<int:user_id>/set-role",
        operator_api.OperatorSetRoleApi.as_view(),
        name="operator-set-role",
    ),
    path(
        "operators/<int:user_id>/deactivate",
        operator_api.OperatorDeactivateApi.as_view(),
        name="operator-deactivate",
    ),
    path(
        "operators/<int:user_id>/reactivate",
        operator_api.OperatorReactivateApi.as_view(),
        name="operator-reactivate",
    ),
    path(
        "operators/<int:user_id>/reset-password",
        operator_api.OperatorPasswordResetApi.as_view(),
        name="operator-reset-password",
    ),
    path("audit-events/", api.AuditEventListApi.as_view(), name="audit-event-list"),
]
