"""Operator API for the store: Groups of stored patients, and what the store holds."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.roles import RUN_EXPORTS
from bulkops.api import OperatorApi, OperatorListApi, PagePagination, validated
from fhirstore.groups import delete_group, upsert_group
from fhirstore.models import GroupMembership, Resource

# --- Groups ---------------------------------------------------------------------------


class GroupOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="resource_id")
    name = serializers.SerializerMethodField()
    last_updated = serializers.DateTimeField()
    member_count = serializers.IntegerField()

    def get_name(self, group: Resource) -> str:
        return str(json.loads(group.body).get("name", ""))


class GroupDetailOutputSerializer(GroupOutputSerializer):
    members = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_members(self, group: Resource) -> list[str]:
        return list(
            GroupMembership.objects.filter(group=group, inactive=False)
            .order_by("patient_id")
            .values_list("patient_id", flat=True)
        )


def _groups() -> QuerySet[Resource]:
    return (
        Resource.objects.live()
        .filter(resource_type="Group")
        .annotate(member_count=Count("memberships", filter=Q(memberships__inactive=False)))
        .order_by("resource_id")
    )


def _group_detail(group_id: str) -> dict[str, Any]:
    return GroupDetailOutputSerializer(get_object_or_404(_groups(), resource_id=group_id)).data


class GroupListApi(OperatorListApi):
    serializer_class = GroupOutputSerializer
    pagination_class = PagePagination
    queryset = _groups()


class GroupInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    patient_ids = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=100_000
    )


class GroupCreateApi(OperatorApi):
    """Create a Group of existing patients; `id` defaults to a new uuid."""

    write_permission = RUN_EXPORTS

    class InputSerializer(GroupInputSerializer):
        id = serializers.CharField(max_length=64, required=False)

    @extend_schema(request=InputSerializer, responses={201: GroupDetailOutputSerializer})
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        if data.get("id") and _groups().filter(resource_id=data["id"]).exists():
            raise exceptions.ValidationError({"id": "A Group with this id exists; PUT to it."})
        group = upsert_group(
            group_id=data.get("id"),
            name=data["name"],
            patient_ids=data["patient_ids"],
            actor=request.user.get_username(),
        )
        return Response(_group_detail(group.resource_id), status=status.HTTP_201_CREATED)


class GroupDetailApi(OperatorApi):
    @extend_schema(responses=GroupDetailOutputSerializer)
    def get(self, request: Request, group_id: str) -> Response:
        return Response(_group_detail(group_id))


class GroupUpdateApi(OperatorApi):
    """Replace a Group's name and members (the whole list: PUT semantics)."""

    write_permission = RUN_EXPORTS

    @extend_schema(request=GroupInputSerializer, responses=GroupDetailOutputSerializer)
    def post(self, request: Request, group_id: str) -> Response:
        get_object_or_404(_groups(), resource_id=group_id)
        data = validated(GroupInputSerializer, request.data)
        upsert_group(group_id=group_id, **data, actor=request.user.get_username())
        return Response(_group_detail(group_id))


class GroupDeleteApi(OperatorApi):
    write_permission = RUN_EXPORTS

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, group_id: str) -> Response:
        get_object_or_404(_groups(), resource_id=group_id)
        delete_group(group_id=group_id, actor=request.user.get_username())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Data inventory -------------------------------------------------------------------


class InventoryApi(OperatorApi):
    """How many resources of each type the store holds (live, and tombstones)."""

    class OutputSerializer(serializers.Serializer):
        resource_type = serializers.CharField()
        live = serializers.IntegerField()
        deleted = serializers.IntegerField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        rows = (
            Resource.objects.values("resource_type")
            .annotate(
                live=Count("id", filter=Q(deleted=False)),
                deleted=Count("id", filter=Q(deleted=True)),
            )
            .order_by("resource_type")
        )
        return Response(self.OutputSerializer(rows, many=True).data)
