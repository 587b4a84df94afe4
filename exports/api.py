"""Operator JSON API for exports, their files, Groups and the data inventory.

An operator launches an export on a backend client's behalf: the client's scopes and
bound groups limit it exactly as they limit the client's own kick-offs (the same
`plan_export`), and the audit trail names the operator.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import django_filters
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import AuditEvent, BackendClient
from accounts.roles import RUN_EXPORTS
from bulkops.api import (
    NewestFirstCursorPagination,
    OperatorApi,
    OperatorListApi,
    PagePagination,
    UtcDateTimeFilter,
    validated,
)
from bulkops.api_renderers import ExactNumberJsonRenderer
from bulkops.fhir import resource_json
from bulkops.fhir.outcome import FhirError
from bulkops.fhir.params import GROUP, LENIENT, STRICT, V2, V4, export_path, listed_pairs
from bulkops.fhir.scopes import readable_types
from bulkops.fhir.type_filters import MAX_TYPE_FILTERS, parse_filters
from bulkops.fhir_http import absolute_url
from exports.file_audit import Part, record_file_read
from exports.kickoff import ExportPlan, plan_export
from exports.models import ExportFile, ExportJob
from exports.services import delete_export, start_export
from exports.storage import DEFAULT_STORAGE, job_storage, storage_names

PREVIEW_MAX_LINES = 100
PREVIEW_MAX_BYTES = 1024 * 1024  # a preview never reads more than this of a file


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


# --- Exports --------------------------------------------------------------------------


class FileOutputSerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="resource_type")
    count = serializers.IntegerField(source="resource_count")
    url = serializers.SerializerMethodField(help_text="The FHIR download URL (bearer token).")

    class Meta:
        model = ExportFile
        fields = ["uuid", "kind", "type", "count", "size_bytes", "url"]

    def get_url(self, file: ExportFile) -> str:
        return absolute_url(self.context["request"], f"/fhir/bulkfiles/{file.uuid}")


class JobOutputSerializer(serializers.ModelSerializer):
    client_id = serializers.CharField(source="client.client_id", allow_null=True)
    percent_done = serializers.IntegerField()
    progress = serializers.CharField(source="progress_text")

    class Meta:
        model = ExportJob
        fields = [
            "uuid",
            "client_id",
            "level",
            "group_id",
            "status",
            "percent_done",
            "progress",
            "types",
            "warnings",
            "parameters",
            "request_url",
            "bulk_version",
            "transaction_time",
            "created_at",
            "completed_at",
            "expires_at",
            "deleted_at",
            "failure_reason",
            "storage",
        ]


class JobDetailOutputSerializer(JobOutputSerializer):
    """A job with its files, grouped like the manifest's output/deleted/error."""

    files = FileOutputSerializer(many=True)

    class Meta(JobOutputSerializer.Meta):
        fields = [*JobOutputSerializer.Meta.fields, "files"]


def _jobs() -> QuerySet[ExportJob]:
    return ExportJob.objects.select_related("client")


def _job_detail(request: Request, job: ExportJob) -> dict[str, Any]:
    job = _jobs().prefetch_related("files").get(pk=job.pk)
    return JobDetailOutputSerializer(job, context={"request": request}).data


class JobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ExportJob.Status.choices)
    level = django_filters.ChoiceFilter(choices=ExportJob.Level.choices)
    client_id = django_filters.CharFilter(field_name="client__client_id")
    deleted = django_filters.BooleanFilter(
        field_name="deleted_at", lookup_expr="isnull", exclude=True
    )
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = ExportJob
        fields = ["status", "level"]


class JobListApi(OperatorListApi):
    """Every export, newest first, by cursor (deleted ones too, with deleted_at)."""

    serializer_class = JobOutputSerializer
    pagination_class = NewestFirstCursorPagination
    filterset_class = JobFilter
    queryset = _jobs()


class JobDetailApi(OperatorApi):
    """One export: progress while it runs, its files once complete."""

    @extend_schema(responses=JobDetailOutputSerializer)
    def get(self, request: Request, job_id: str) -> Response:
        return Response(_job_detail(request, get_object_or_404(_jobs(), uuid=job_id)))


class JobDeleteApi(OperatorApi):
    """Cancel a running export or delete a finished one's files (like the FHIR DELETE)."""

    write_permission = RUN_EXPORTS

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, job_id: str) -> Response:
        job = get_object_or_404(_jobs(), uuid=job_id, deleted_at__isnull=True)
        _delete(request, job)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _delete(request: Request, job: ExportJob) -> None:
    delete_export(
        job=job,
        actor_type=AuditEvent.ActorType.OPERATOR,
        actor=request.user.get_username(),
        now=timezone.now(),
        request=request,
    )


class JobCancelApi(OperatorApi):
    """Stop a running export; its partial files are removed. 409 if it has finished."""

    write_permission = RUN_EXPORTS

    @extend_schema(
        request=None,
        responses={
            200: JobDetailOutputSerializer,
            409: OpenApiResponse(description="The export has already finished."),
        },
    )
    def post(self, request: Request, job_id: str) -> Response:
        job = get_object_or_404(_jobs(), uuid=job_id, deleted_at__isnull=True)
        if job.is_finished:
            raise Conflict(f"The export is already {job.status}; DELETE it to remove its files.")
        _delete(request, job)
        return Response(_job_detail(request, job))


class JobLaunchApi(OperatorApi):
    """Launch an export for a backend client, limited by its scopes and bound groups."""

    write_permission = RUN_EXPORTS

    class InputSerializer(serializers.Serializer):
        client_id = serializers.CharField(max_length=64)
        level = serializers.ChoiceField(choices=ExportJob.Level.choices)
        group_id = serializers.CharField(max_length=64, required=False, default="")
        types = serializers.ListField(
            child=serializers.CharField(max_length=64), required=False, max_length=200
        )
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(
            required=False, help_text="Only resources last updated at or before this instant."
        )
        elements = serializers.ListField(
            child=serializers.CharField(max_length=100), required=False, max_length=100
        )
        type_filters = serializers.ListField(
            child=serializers.CharField(max_length=2000),
            required=False,
            max_length=MAX_TYPE_FILTERS,
            help_text="_typeFilter searches, e.g. Observation?category=laboratory; "
            "filters on one type are OR-ed.",
        )
        patients = serializers.ListField(
            child=serializers.CharField(max_length=64),
            required=False,
            max_length=1000,
            help_text="Patient ids (Patient and Group exports only).",
        )
        lenient = serializers.BooleanField(
            default=False, help_text="Drop what cannot be honoured, with warnings."
        )
        storage = serializers.CharField(
            max_length=32,
            default=DEFAULT_STORAGE,
            help_text="The output storage: `default` or a name from BULKOPS_OUTPUT_STORAGES.",
        )

        bulk_version = serializers.ChoiceField(
            choices=[V2, V4],
            default=V2,
            help_text="4.0.0: a Bulk Data 4 export ($export-v4), its manifest in the "
            "ballot's model.",
        )
        organize_output_by = serializers.ChoiceField(
            choices=["Patient"],
            required=False,
            help_text="4.0.0 only: files of patient blocks, each led by a header line.",
        )
        allow_partial_manifests = serializers.BooleanField(
            default=False, help_text="4.0.0 only: finished files are listed while it runs."
        )

        def validate_storage(self, name: str) -> str:
            return checked_storage_name(name)

        def validate(self, data: dict[str, Any]) -> dict[str, Any]:
            if (data["level"] == GROUP) != bool(data["group_id"]):
                raise serializers.ValidationError(
                    {"group_id": "Give group_id for a group export, and only then."}
                )
            if data["bulk_version"] != V4:
                for name in ("organize_output_by", "allow_partial_manifests"):
                    if data.get(name):
                        raise serializers.ValidationError(
                            {name: "A Bulk Data 4.0.0 option: give bulk_version 4.0.0."}
                        )
            if not data["lenient"] and (problems := filter_problems(data)):
                raise serializers.ValidationError({"type_filters": problems})
            return data

    @extend_schema(request=InputSerializer, responses={201: JobDetailOutputSerializer})
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        client = BackendClient.objects.filter(client_id=data["client_id"]).first()
        if client is None or not client.is_active:
            raise exceptions.ValidationError({"client_id": "No active client has this id."})
        now = timezone.now()
        pairs = _kickoff_pairs(data)
        plan = _plan(request, client, data, pairs, now)
        job = start_export(
            client=client,
            level=data["level"],
            group_id=data["group_id"],
            parameters=plan.parameters,
            type_plan=plan.type_plan,
            request_url=_kickoff_url(request, data, pairs),
            now=now,
            request=request,
            operator=request.user,
            storage=data["storage"],
            bulk_version=data["bulk_version"],
        )
        return Response(_job_detail(request, job), status=status.HTTP_201_CREATED)


def checked_storage_name(name: str) -> str:
    """`name` if it is a configured output storage; the API's 400 otherwise."""
    if name not in storage_names():
        raise serializers.ValidationError(
            f"No output storage is called {name!r}; configured: {', '.join(storage_names())}."
        )
    return name


def filter_problems(data: dict[str, Any]) -> list[str]:
    """Why each of the launch's filters cannot be applied (strict handling refuses the
    launch for any), in the words the FHIR kick-off uses."""
    parsed = parse_filters(
        data.get("type_filters", []), now=timezone.now(), types=data.get("types") or None
    )
    return [item.problem for item in parsed if item.problem]


def _kickoff_pairs(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The launch as $export parameters, so planning is the FHIR kick-off's own; for
    $export-v4 one value per parameter (v4 digest B2) and its own options."""
    version = data["bulk_version"]
    pairs = listed_pairs("_type", data.get("types") or [], version)
    for name in ("since", "until"):
        if data.get(name):
            pairs.append((f"_{name}", data[name].isoformat()))
    pairs += listed_pairs("_elements", data.get("elements") or [], version)
    pairs += [("_typeFilter", text) for text in data.get("type_filters", [])]
    pairs += [("patient", f"Patient/{pid}") for pid in data.get("patients", [])]
    if version == V4 and data.get("organize_output_by"):
        pairs.append(("organizeOutputBy", data["organize_output_by"]))
    if version == V4 and data["allow_partial_manifests"]:
        pairs.append(("allowPartialManifests", "true"))
    return pairs


def _plan(
    request: Request,
    client: BackendClient,
    data: dict[str, Any],
    pairs: list[tuple[str, str]],
    now: Any,
) -> ExportPlan:
    """plan_export, its refusals as 400s: here they describe the operator's input
    (a 403 would read as "your role may not", a 404 as "no such endpoint")."""
    try:
        return plan_export(
            client=client,
            level=data["level"],
            group_id=data["group_id"],
            pairs=pairs,
            handling=LENIENT if data["lenient"] else STRICT,
            now=now,
            method="POST",
            access=readable_types(client.scopes.split()),
            base_url=absolute_url(request, "/fhir"),
            version=data["bulk_version"],
        )
    except FhirError as error:
        raise exceptions.ValidationError({"non_field_errors": [error.diagnostics]}) from error


def _kickoff_url(request: Request, data: dict[str, Any], pairs: list[tuple[str, str]]) -> str:
    """The manifest's `request`: the equivalent FHIR kick-off URL."""
    path = f"/fhir{export_path(data['level'], data['group_id'], data['bulk_version'])}"
    query = urlencode([(name, value) for name, value in pairs if name != "patient"])
    return absolute_url(request, f"{path}?{query}" if query else path)


# --- Files ----------------------------------------------------------------------------


class FileListApi(OperatorListApi):
    """The files of one export (any kind), in manifest order."""

    serializer_class = FileOutputSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[ExportFile]:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return ExportFile.objects.none()
        job = get_object_or_404(ExportJob, uuid=self.kwargs["job_id"])
        return job.files.order_by("kind", "resource_type", "storage_key")


class FilePreviewApi(OperatorApi):
    """The first `lines` resources of a file as JSON, reading at most 1 MiB of it, its
    decimals as the file writes them."""

    renderer_classes = [ExactNumberJsonRenderer]

    class OutputSerializer(serializers.Serializer):
        uuid = serializers.UUIDField()
        type = serializers.CharField()
        count = serializers.IntegerField(help_text="Resources in the whole file.")
        lines = serializers.ListField(child=serializers.JSONField())
        truncated = serializers.BooleanField(help_text="True when the file has more lines.")

    class QuerySerializer(serializers.Serializer):
        lines = serializers.IntegerField(min_value=1, max_value=PREVIEW_MAX_LINES, default=10)

    @extend_schema(parameters=[QuerySerializer], responses=OutputSerializer)
    def get(self, request: Request, file_id: str) -> Response:
        query = validated(self.QuerySerializer, request.query_params)
        file = get_object_or_404(
            ExportFile.objects.select_related("job"), uuid=file_id, job__deleted_at__isnull=True
        )
        lines, truncated = read_first_lines(file, query["lines"])
        record_file_read(request, file, part=Part(first_line=1, last_line=len(lines)))
        body = {
            "uuid": file.uuid,
            "type": file.resource_type,
            "count": file.resource_count,
            "lines": lines,
            "truncated": truncated,
        }
        return Response(self.OutputSerializer(body).data)


def read_first_lines(file: ExportFile, wanted: int) -> tuple[list[Any], bool]:
    """Up to `wanted` parsed NDJSON lines from the start of the file, reading line by
    line and never more than PREVIEW_MAX_BYTES, so a huge file costs one small read."""
    lines: list[Any] = []
    budget = PREVIEW_MAX_BYTES
    with job_storage(file.job).open_range(file.storage_key, 0, PREVIEW_MAX_BYTES + 1) as handle:
        while len(lines) < wanted and budget > 0:
            raw = handle.readline(budget)
            if not raw:
                return lines, False
            budget -= len(raw)
            if not raw.endswith(b"\n") and budget <= 0:
                return lines, True  # a line longer than the budget: stop before it
            lines.append(resource_json.loads(raw))
        return lines, bool(handle.read(1))
