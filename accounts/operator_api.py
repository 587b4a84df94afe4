"""Operator JSON API for managing operators (admins only): list, read, create, change
role, deactivate, reactivate, reset a password. The same services as the console's
Operators pages, so the same rules (the last active admin stays) and audit events.

Generated passwords appear once, in the response to the call that made them, which
no cache may keep.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.operators import (
    deactivate_operator,
    operators,
    reactivate_operator,
    role_of,
    set_operator_role,
)
from accounts.roles import MANAGE_OPERATORS, Role
from accounts.services import create_operator, reset_operator_password
from bulkops import api as base
from bulkops.api import OperatorApi, PagePagination, validated

NO_STORE = {"Cache-Control": "no-store"}


class OperatorOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()
    role = serializers.SerializerMethodField()
    is_active = serializers.BooleanField(help_text="False: deactivated, cannot sign in.")
    last_login = serializers.DateTimeField(allow_null=True, help_text="Last sign-in.")
    date_joined = serializers.DateTimeField()
    api_tokens = serializers.IntegerField(
        source="api_token_count", help_text="How many of their API tokens are active."
    )

    @extend_schema_field(serializers.CharField(help_text="admin, operator, auditor or empty."))
    def get_role(self, user: AbstractUser) -> str:
        return role_of(user)


def _operator(user_id: int) -> AbstractUser:
    return get_object_or_404(operators(), pk=user_id)


def _shown(user_id: int) -> dict[str, object]:
    """The operator as the API shows them, read again after a change."""
    return dict(OperatorOutputSerializer(_operator(user_id)).data)


class OperatorsApi(OperatorApi):
    """Admins only, reading and changing."""

    read_permission = MANAGE_OPERATORS
    write_permission = MANAGE_OPERATORS


class OperatorListApi(OperatorsApi, base.OperatorListApi):
    serializer_class = OperatorOutputSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[AbstractUser]:
        return operators()


class OperatorDetailApi(OperatorsApi):
    @extend_schema(responses=OperatorOutputSerializer)
    def get(self, request: Request, user_id: int) -> Response:
        return Response(_shown(_operator(user_id).pk))


class OperatorCreateApi(OperatorsApi):
    """Create an operator with a generated password, returned only in this response."""

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        role = serializers.ChoiceField(choices=Role.choices)
        email = serializers.EmailField(required=False, allow_blank=True, default="")

    class OutputSerializer(OperatorOutputSerializer):
        password = serializers.CharField(help_text="Shown once; give it to the operator.")

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        user, password = create_operator(**data, created_by=request.user, request=request)
        body = {**_shown(user.pk), "password": password}
        return Response(body, status=status.HTTP_201_CREATED, headers=NO_STORE)


class OperatorSetRoleApi(OperatorsApi):
    """Give the operator exactly this role; refused for the last active admin."""

    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=Role.choices)

    @extend_schema(request=InputSerializer, responses=OperatorOutputSerializer)
    def post(self, request: Request, user_id: int) -> Response:
        user = _operator(user_id)
        data = validated(self.InputSerializer, request.data)
        set_operator_role(user=user, role=data["role"], actor=request.user, request=request)
        return Response(_shown(user.pk))


class OperatorDeactivateApi(OperatorsApi):
    """Stop the operator signing in; their sessions end and API tokens are revoked at
    once. Refused for yourself and for the last active admin."""

    class OutputSerializer(OperatorOutputSerializer):
        sessions_ended = serializers.IntegerField()
        api_tokens_revoked = serializers.IntegerField()

    @extend_schema(request=None, responses=OutputSerializer)
    def post(self, request: Request, user_id: int) -> Response:
        ended = deactivate_operator(user=_operator(user_id), actor=request.user, request=request)
        body = {
            **_shown(user_id),
            "sessions_ended": ended.sessions_ended,
            "api_tokens_revoked": ended.api_tokens_revoked,
        }
        return Response(body)


class OperatorReactivateApi(OperatorsApi):
    """Let a deactivated operator sign in again; their old API tokens stay revoked."""

    @extend_schema(request=None, responses=OperatorOutputSerializer)
    def post(self, request: Request, user_id: int) -> Response:
        reactivate_operator(user=_operator(user_id), actor=request.user, request=request)
        return Response(_shown(user_id))


class OperatorPasswordResetApi(OperatorsApi):
    """Give the operator a generated password, returned only in this response, and end
    their sessions."""

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        password = serializers.CharField(help_text="Shown once; give it to the operator.")

    @extend_schema(request=None, responses=OutputSerializer)
    def post(self, request: Request, user_id: int) -> Response:
        user = _operator(user_id)
        password = reset_operator_password(user=user, admin=request.user, request=request)
        return Response({"username": user.get_username(), "password": password}, headers=NO_STORE)
