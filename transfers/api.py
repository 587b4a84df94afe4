"""Operator JSON API for deliveries: the console's actions, by the same services.

Sending is checked by the console's own form (transfers.forms.SendForm), so a request
the console would refuse is refused here with the same words, per field.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.roles import RUN_EXPORTS
from bulkops.api import OperatorApi, OperatorListApi, PagePagination, validated
from bulkops.fhir.submit import COMPLETED, STOPPED
from exports.api import Conflict
from transfers import services
from transfers.forms import SendForm
from transfers.models import Delivery
from transfers.queries import copy_files, shown_status


class OutcomeSerializer(serializers.Serializer):
    manifest_url = serializers.CharField()
    severity = serializers.CharField()
    plain = serializers.CharField()
    raw = serializers.CharField(required=False)


class CopyFileSerializer(serializers.Serializer):
    resource_type = serializers.CharField()
    status = serializers.CharField()
    resources = serializers.IntegerField()
    error = serializers.CharField()


class DeliveryOutputSerializer(serializers.ModelSerializer):
    job = serializers.UUIDField(source="job.uuid")
    receiver = serializers.CharField(source="receiver_label")
    status = serializers.SerializerMethodField(
        help_text="waiting, queued, sending, open, watching, done, stopped or failed."
    )
    outcomes = OutcomeSerializer(many=True)
    copy_files = serializers.SerializerMethodField(
        help_text="A copy's files as this bulkops loads them; empty for other deliveries."
    )

    class Meta:
        model = Delivery
        fields = [
            "uuid",
            "job",
            "receiver",
            "submission_id",
            "hold_open",
            "status",
            "submission_status",
            "progress",
            "outcomes",
            "error",
            "copy_files",
            "requested_by",
            "created_at",
            "finished_at",
        ]

    def get_status(self, delivery: Delivery) -> str:
        return shown_status(delivery).lower()

    @extend_schema_field(CopyFileSerializer(many=True))
    def get_copy_files(self, delivery: Delivery) -> list[dict[str, Any]]:
        return CopyFileSerializer(copy_files(delivery), many=True).data


class DeliveryInputSerializer(serializers.Serializer):
    job = serializers.UUIDField(help_text="A completed export of ours.")
    server = serializers.CharField(max_length=64, help_text="The remote server's name.")
    hold_open = serializers.BooleanField(
        default=False, help_text="Send the manifest in-progress; complete or stop it later."
    )


def _get(delivery_id: str) -> Delivery:
    return get_object_or_404(Delivery.objects.select_related("job", "server"), uuid=delivery_id)


class DeliveryListApi(OperatorListApi):
    """Deliveries and copies, the newest first."""

    serializer_class = DeliveryOutputSerializer
    pagination_class = PagePagination
    queryset = Delivery.objects.select_related("job", "server")


class DeliveryCreateApi(OperatorApi):
    """Send a completed export to a remote server's `$bulk-submit`."""

    write_permission = RUN_EXPORTS

    @extend_schema(request=DeliveryInputSerializer, responses={201: DeliveryOutputSerializer})
    def post(self, request: Request) -> Response:
        data = validated(DeliveryInputSerializer, request.data)
        form = SendForm(
            {"job": str(data["job"]), "server": data["server"], "hold_open": data["hold_open"]}
        )
        if not form.is_valid():
            raise exceptions.ValidationError(
                {name if name != "__all__" else "non_field_errors": errors
                 for name, errors in form.errors.items()}
            )  # fmt: skip
        try:
            delivery = form.send(request)
        except services.DeliveryRefused as refused:
            raise Conflict(str(refused)) from None
        return Response(DeliveryOutputSerializer(delivery).data, status=status.HTTP_201_CREATED)


class DeliveryDetailApi(OperatorApi):
    """One delivery: its state and what the receiver reported per file."""

    @extend_schema(responses=DeliveryOutputSerializer)
    def get(self, request: Request, delivery_id: str) -> Response:
        return Response(DeliveryOutputSerializer(_get(delivery_id)).data)


class DeliveryCompleteApi(OperatorApi):
    """Tell the receiver of an open delivery it is complete. 409 unless it is open."""

    write_permission = RUN_EXPORTS
    submission_status = COMPLETED

    @extend_schema(
        request=None,
        responses={
            202: DeliveryOutputSerializer,
            409: OpenApiResponse(description="Not open; `detail` says why."),
        },
    )
    def post(self, request: Request, delivery_id: str) -> Response:
        delivery = _get(delivery_id)
        try:
            services.close(
                delivery,
                self.submission_status,
                actor=request.user.get_username(),
                request=request,
            )
        except services.DeliveryRefused as refused:
            raise Conflict(str(refused)) from None
        delivery.refresh_from_db()
        return Response(DeliveryOutputSerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class DeliveryStopApi(DeliveryCompleteApi):
    """Stop a delivery: the receiver deletes what it loaded (one not sent yet is only
    stopped here). 409 once completed."""

    submission_status = STOPPED
