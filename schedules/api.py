"""Operator JSON API for schedules: the console's actions, by the same services.

Input is checked by the console's own form (schedules.forms.ScheduleForm), so a
schedule the console would refuse is refused here with the same words, per field.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.roles import RUN_EXPORTS
from bulkops.api import OperatorApi, OperatorListApi, PagePagination, validated
from bulkops.fhir.type_filters import MAX_TYPE_FILTERS
from bulkops.outbound.origins import origin_text
from exports.api import Conflict
from exports.models import ExportJob
from exports.storage import DEFAULT_STORAGE
from schedules.forms import ScheduleForm
from schedules.models import ExportSchedule, ScheduleRun
from schedules.queries import runs_with_counts
from schedules.services import delete_schedule, run_schedule, set_paused

RUNS_SHOWN = 100


class RunOutputSerializer(serializers.ModelSerializer):
    job = serializers.UUIDField(source="job.uuid", allow_null=True)
    status = serializers.CharField()
    resources = serializers.IntegerField(source="job.resources_exported", allow_null=True)
    files = serializers.IntegerField()

    class Meta:
        model = ScheduleRun
        fields = [
            "job",
            "trigger",
            "slot",
            "since",
            "missed",
            "refusal",
            "status",
            "resources",
            "files",
            "created_at",
        ]


class ScheduleOutputSerializer(serializers.ModelSerializer):
    client_id = serializers.CharField(source="client.client_id", allow_null=True)
    description = serializers.CharField()
    submit_to = serializers.CharField(
        source="submit_to.name",
        allow_null=True,
        help_text="The remote server each run's export is sent to ($bulk-submit).",
    )
    notify_webhook = serializers.SerializerMethodField(
        help_text="The webhook's origin (its full URL is never shown again)."
    )

    class Meta:
        model = ExportSchedule
        fields = [
            "uuid",
            "name",
            "client_id",
            "level",
            "group_id",
            "types",
            "elements",
            "type_filters",
            "cron",
            "description",
            "timezone",
            "retention",
            "storage",
            "incremental",
            "paused",
            "next_run_at",
            "last_slot",
            "notify_webhook",
            "notify_email",
            "submit_to",
            "created_by",
            "created_at",
        ]

    def get_notify_webhook(self, schedule: ExportSchedule) -> str:
        return origin_text(schedule.notify_webhook_url) if schedule.notify_webhook_url else ""


class ScheduleDetailOutputSerializer(ScheduleOutputSerializer):
    runs = serializers.SerializerMethodField(help_text="The newest runs first.")

    class Meta(ScheduleOutputSerializer.Meta):
        fields = [*ScheduleOutputSerializer.Meta.fields, "runs"]

    @extend_schema_field(RunOutputSerializer(many=True))
    def get_runs(self, schedule: ExportSchedule) -> list[dict[str, Any]]:
        return RunOutputSerializer(runs_with_counts(schedule)[:RUNS_SHOWN], many=True).data


def _schedules() -> QuerySet[ExportSchedule]:
    return ExportSchedule.objects.select_related("client")


def _get(schedule_id: str) -> ExportSchedule:
    return get_object_or_404(_schedules(), uuid=schedule_id)


def _detail(schedule: ExportSchedule) -> dict[str, Any]:
    return ScheduleDetailOutputSerializer(_get(str(schedule.uuid))).data


class ScheduleInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    client_id = serializers.CharField(
        max_length=4096, required=False, allow_null=True, help_text="Empty: the console itself."
    )
    level = serializers.ChoiceField(choices=ExportJob.Level.choices)
    group_id = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)
    types = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=200
    )
    elements = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=100
    )
    type_filters = serializers.ListField(
        child=serializers.CharField(max_length=2000), required=False, max_length=MAX_TYPE_FILTERS
    )
    cron = serializers.CharField(
        max_length=120, help_text="minute hour day-of-month month day-of-week, e.g. 30 2 * * *"
    )
    timezone = serializers.CharField(max_length=64, default="UTC", help_text="IANA zone name.")
    retention_hours = serializers.IntegerField(required=False, allow_null=True)
    storage = serializers.CharField(
        max_length=32,
        default=DEFAULT_STORAGE,
        help_text="The output storage runs write to: `default` or a BULKOPS_OUTPUT_STORAGES name.",
    )
    incremental = serializers.BooleanField(default=False)
    notify_webhook_url = serializers.CharField(
        max_length=2000, required=False, default="", allow_blank=True
    )
    notify_webhook_secret = serializers.CharField(
        max_length=200,
        required=False,
        default="",
        allow_blank=True,
        write_only=True,
        help_text="Signs each webhook call; omitted on update: the saved one is kept.",
    )
    notify_email = serializers.CharField(
        max_length=254, required=False, default="", allow_blank=True
    )
    submit_to = serializers.CharField(
        max_length=64,
        required=False,
        default="",
        allow_blank=True,
        help_text="A remote server's name: each run's export is sent to its $bulk-submit.",
    )


def checked_form(data: dict[str, Any], instance: ExportSchedule | None) -> ScheduleForm:
    """The console's form filled from the JSON input; its errors as a 400."""
    values = {
        **{key: value for key, value in data.items() if isinstance(value, str | bool | int)},
        "client": data.get("client_id") or "",
        "types": ",".join(data.get("types", [])),
        "elements": ",".join(data.get("elements", [])),
        "type_filters": "\n".join(data.get("type_filters", [])),
        "frequency": "cron",
        "retention_hours": data.get("retention_hours") or "",
        "incremental": "on" if data["incremental"] else "",
    }
    form = ScheduleForm(values, instance=instance)
    if not form.is_valid():
        errors = {
            ("non_field_errors" if name == "__all__" else _api_name(name)): messages
            for name, messages in form.errors.items()
        }
        raise exceptions.ValidationError(errors)
    return form


def _api_name(field: str) -> str:
    return "client_id" if field == "client" else field


def _save(request: Request, schedule: ExportSchedule | None) -> ExportSchedule:
    data = validated(ScheduleInputSerializer, request.data)
    return checked_form(data, schedule).save(request)


class ScheduleListApi(OperatorListApi):
    """Every schedule, by name."""

    serializer_class = ScheduleOutputSerializer
    pagination_class = PagePagination
    queryset = _schedules()


class ScheduleCreateApi(OperatorApi):
    """Define a schedule; beat starts its runs from its next fire time."""

    write_permission = RUN_EXPORTS

    @extend_schema(request=ScheduleInputSerializer, responses={201: ScheduleDetailOutputSerializer})
    def post(self, request: Request) -> Response:
        return Response(_detail(_save(request, None)), status=status.HTTP_201_CREATED)


class ScheduleDetailApi(OperatorApi):
    """One schedule, its next run and its runs with their counts."""

    @extend_schema(responses=ScheduleDetailOutputSerializer)
    def get(self, request: Request, schedule_id: str) -> Response:
        return Response(_detail(_get(schedule_id)))


class ScheduleUpdateApi(OperatorApi):
    """Replace a schedule's definition (the whole of it: PUT semantics)."""

    write_permission = RUN_EXPORTS

    @extend_schema(request=ScheduleInputSerializer, responses=ScheduleDetailOutputSerializer)
    def post(self, request: Request, schedule_id: str) -> Response:
        return Response(_detail(_save(request, _get(schedule_id))))


class SchedulePauseApi(OperatorApi):
    """Pause (`paused` true in the path's action) or resume; times passed while paused
    are skipped."""

    write_permission = RUN_EXPORTS
    paused = True

    @extend_schema(request=None, responses=ScheduleDetailOutputSerializer)
    def post(self, request: Request, schedule_id: str) -> Response:
        schedule = _get(schedule_id)
        set_paused(
            schedule=schedule,
            paused=self.paused,
            operator=request.user,
            request=request,
            now=timezone.now(),
        )
        return Response(_detail(schedule))


class ScheduleResumeApi(SchedulePauseApi):
    """Resume a paused schedule from its next fire time."""

    paused = False


class ScheduleRunApi(OperatorApi):
    """Run now, besides the schedule's own times. 409 when no export could start (the
    previous run still exporting, the client disabled, a refused kick-off)."""

    write_permission = RUN_EXPORTS

    @extend_schema(
        request=None,
        responses={
            201: RunOutputSerializer,
            409: OpenApiResponse(description="No export started; `detail` says why."),
        },
    )
    def post(self, request: Request, schedule_id: str) -> Response:
        schedule = _get(schedule_id)
        run = run_schedule(
            schedule_id=schedule.pk, now=timezone.now(), operator=request.user, request=request
        )
        if run is None or run.job is None:
            raise Conflict(run.refusal if run else "Nothing to run.")
        run = runs_with_counts(schedule).get(pk=run.pk)
        return Response(RunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class ScheduleDeleteApi(OperatorApi):
    """Delete a schedule; the exports it started remain."""

    write_permission = RUN_EXPORTS

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, schedule_id: str) -> Response:
        delete_schedule(schedule=_get(schedule_id), operator=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
