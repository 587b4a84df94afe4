from django.urls import path, register_converter

from accounts import api
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
    path("audit-events/", api.AuditEventListApi.as_view(), name="audit-event-list"),
]
