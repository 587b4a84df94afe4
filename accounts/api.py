"""Operator JSON API for accounts: personal API tokens, backend clients, audit trail.

One DRF view per operation (HackSoft): nested Input/Output serializers, validate →
service → Response. The services are the console's; errors they raise become the
shared error body (bulkops.api).
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.jwks import registered_keys
from accounts.models import ApiToken, AuditEvent, BackendClient
from accounts.roles import MANAGE_CLIENTS, VIEW_AUDIT, VIEW_CONSOLE
from accounts.services import (
    add_client_key,
    create_api_token,
    disable_client,
    enable_client,
    register_client,
    retire_client_key,
    revoke_api_token,
    update_client,
)
from bulkops.api import (
    NewestFirstCursorPagination,
    OperatorApi,
    OperatorListApi,
    PagePagination,
    UtcDateTimeFilter,
    validated,
)

# --- Personal API tokens --------------------------------------------------------------


class ApiTokenOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at"]


class ApiTokenListApi(OperatorListApi):
    """The caller's own active tokens (never their values)."""

    serializer_class = ApiTokenOutputSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[ApiToken]:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user, revoked_at__isnull=True)


class ApiTokenCreateApi(OperatorApi):
    """Create a token for the caller; the response is the only place its value appears."""

    write_permission = VIEW_CONSOLE

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)

    class OutputSerializer(ApiTokenOutputSerializer):
        token = serializers.CharField(help_text="Shown once; store it now.")

        class Meta(ApiTokenOutputSerializer.Meta):
            fields = [*ApiTokenOutputSerializer.Meta.fields, "token"]

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        issued = create_api_token(user=request.user, name=data["name"], request=request)
        body = {**ApiTokenOutputSerializer(issued.token).data, "token": issued.raw}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiTokenRevokeApi(OperatorApi):
    write_permission = VIEW_CONSOLE

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, token_id: int) -> Response:
        token = get_object_or_404(ApiToken.objects.active(), pk=token_id, user=request.user)
        revoke_api_token(user=request.user, token_id=token.pk, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Backend clients ------------------------------------------------------------------


class ClientOutputSerializer(serializers.ModelSerializer):
    scopes = serializers.SerializerMethodField()
    groups = serializers.SerializerMethodField()

    class Meta:
        model = BackendClient
        fields = ["client_id", "name", "status", "scopes", "jwks_uri", "groups", "created_at"]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_scopes(self, client: BackendClient) -> list[str]:
        return client.scopes.split()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_groups(self, client: BackendClient) -> list[str]:
        return sorted(bound.group_id for bound in client.bound_groups.all())


class KeySerializer(serializers.Serializer):
    kid = serializers.CharField()
    kty = serializers.CharField()
    algorithm = serializers.CharField(allow_null=True)
    problem = serializers.CharField(help_text="Why the key cannot sign assertions, or empty.")


class ClientDetailOutputSerializer(ClientOutputSerializer):
    """A client with its keys (inline, or as last fetched from jwks_uri)."""

    keys = serializers.SerializerMethodField()

    class Meta(ClientOutputSerializer.Meta):
        fields = [*ClientOutputSerializer.Meta.fields, "keys", "updated_at"]

    @extend_schema_field(KeySerializer(many=True))
    def get_keys(self, client: BackendClient) -> list[dict[str, Any]]:
        return KeySerializer(registered_keys(client), many=True).data


class ClientFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=BackendClient.Status.choices)
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = BackendClient
        fields = ["status", "name"]


class ClientListApi(OperatorListApi):
    serializer_class = ClientOutputSerializer
    pagination_class = PagePagination
    filterset_class = ClientFilter
    queryset = BackendClient.objects.prefetch_related("bound_groups")


def _client(client_id: str) -> BackendClient:
    return get_object_or_404(
        BackendClient.objects.prefetch_related("bound_groups"), client_id=client_id
    )


class ClientDetailApi(OperatorApi):
    @extend_schema(responses=ClientDetailOutputSerializer)
    def get(self, request: Request, client_id: str) -> Response:
        return Response(ClientDetailOutputSerializer(_client(client_id)).data)


class ClientCreateApi(OperatorApi):
    """Register a client: exactly one of `jwks` (inline public JWK Set) and `jwks_uri`."""

    write_permission = MANAGE_CLIENTS

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        jwks = serializers.JSONField(required=False, allow_null=True, default=None)
        jwks_uri = serializers.CharField(
            max_length=500, required=False, allow_blank=True, default=""
        )
        scopes = serializers.ListField(child=serializers.CharField(max_length=100), max_length=50)
        group_ids = serializers.ListField(
            child=serializers.CharField(max_length=64), required=False, default=list, max_length=100
        )

    @extend_schema(request=InputSerializer, responses={201: ClientDetailOutputSerializer})
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        client = register_client(**data, created_by=request.user)
        return Response(
            ClientDetailOutputSerializer(_client(client.client_id)).data,
            status=status.HTTP_201_CREATED,
        )


class ClientUpdateApi(OperatorApi):
    """Change a client's name, scopes and/or bound groups; omitted fields stay."""

    write_permission = MANAGE_CLIENTS

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        scopes = serializers.ListField(
            child=serializers.CharField(max_length=100), max_length=50, required=False
        )
        group_ids = serializers.ListField(
            child=serializers.CharField(max_length=64), required=False, max_length=100
        )

    @extend_schema(request=InputSerializer, responses=ClientDetailOutputSerializer)
    def post(self, request: Request, client_id: str) -> Response:
        client = _client(client_id)
        data = validated(self.InputSerializer, request.data)
        update_client(
            client_id=client.client_id,
            actor=request.user,
            name=data.get("name", client.name),
            scopes=data.get("scopes", client.scopes.split()),
            group_ids=data.get(
                "group_ids", list(client.bound_groups.values_list("group_id", flat=True))
            ),
        )
        return Response(ClientDetailOutputSerializer(_client(client_id)).data)


class ClientKeyAddApi(OperatorApi):
    """Add a public key (JWK) to a client's inline key set, e.g. to rotate keys."""

    write_permission = MANAGE_CLIENTS

    class InputSerializer(serializers.Serializer):
        jwk = serializers.DictField(help_text="A public RSA (≥ 2048) or EC P-384 JWK with kid.")

    @extend_schema(request=InputSerializer, responses=ClientDetailOutputSerializer)
    def post(self, request: Request, client_id: str) -> Response:
        client = _client(client_id)
        data = validated(self.InputSerializer, request.data)
        add_client_key(client_id=client.client_id, jwk=data["jwk"], actor=request.user)
        return Response(ClientDetailOutputSerializer(_client(client_id)).data)


class ClientKeyRetireApi(OperatorApi):
    """Remove a key by kid; refused if no usable key would remain."""

    write_permission = MANAGE_CLIENTS

    class InputSerializer(serializers.Serializer):
        kid = serializers.CharField(max_length=255)

    @extend_schema(request=InputSerializer, responses=ClientDetailOutputSerializer)
    def post(self, request: Request, client_id: str) -> Response:
        client = _client(client_id)
        data = validated(self.InputSerializer, request.data)
        retire_client_key(client_id=client.client_id, kid=data["kid"], actor=request.user)
        return Response(ClientDetailOutputSerializer(_client(client_id)).data)


class ClientDisableApi(OperatorApi):
    """Disable a client: its access tokens stop working at once."""

    write_permission = MANAGE_CLIENTS

    @extend_schema(request=None, responses=ClientDetailOutputSerializer)
    def post(self, request: Request, client_id: str) -> Response:
        disable_client(client_id=_client(client_id).client_id, actor=request.user)
        return Response(ClientDetailOutputSerializer(_client(client_id)).data)


class ClientEnableApi(OperatorApi):
    """Enable a disabled client; it requests new tokens as usual."""

    write_permission = MANAGE_CLIENTS

    @extend_schema(request=None, responses=ClientDetailOutputSerializer)
    def post(self, request: Request, client_id: str) -> Response:
        enable_client(client_id=_client(client_id).client_id, actor=request.user)
        return Response(ClientDetailOutputSerializer(_client(client_id)).data)


# --- Audit trail ----------------------------------------------------------------------


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter()
    actor_type = django_filters.ChoiceFilter(choices=AuditEvent.ActorType.choices)
    action = django_filters.CharFilter()
    outcome = django_filters.ChoiceFilter(choices=AuditEvent.Outcome.choices)
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["actor", "actor_type", "action", "outcome"]


class AuditEventListApi(OperatorListApi):
    """The audit trail, newest first, by cursor; read-only (nothing changes it)."""

    read_permission = VIEW_AUDIT
    pagination_class = NewestFirstCursorPagination
    filterset_class = AuditEventFilter
    queryset = AuditEvent.objects.all()

    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = AuditEvent
            fields = [
                "id",
                "created_at",
                "actor_type",
                "actor",
                "action",
                "outcome",
                "reason",
                "ip_address",
                "details",
            ]

    serializer_class = OutputSerializer
