"""Console views for export files: the NDJSON preview (byte-range reads, escaped) and
the operator download. Every page of a preview and every download is audited
(exports/file_audit.py): they show patient data."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from accounts.decorators import permission_required
from accounts.roles import RUN_EXPORTS, VIEW_CONSOLE
from exports.file_audit import DOWNLOAD, Part, record_file_read
from exports.models import ExportFile
from exports.preview import PAGE_WINDOW, read_page
from exports.storage import get_storage

PREVIEW_LINES = 50
MAX_PREVIEW_LINES = 500


def get_file_for_user(request: HttpRequest, file_id: str) -> ExportFile:
    """A file of a job whose files still exist; deleted jobs' files are gone (404)."""
    return get_object_or_404(
        ExportFile.objects.select_related("job"), uuid=file_id, job__deleted_at__isnull=True
    )


def _int_param(request: HttpRequest, name: str, default: int, maximum: int) -> int:
    try:
        return max(0, min(int(request.GET.get(name, default)), maximum))
    except ValueError:
        return default


@require_GET
@permission_required(VIEW_CONSOLE)
def file_preview(request: HttpRequest, file_id: str) -> HttpResponse:
    """One page of an NDJSON file from a byte offset: a 5 GB file reads only the page."""
    file = get_file_for_user(request, file_id)
    offset = _int_param(request, "offset", 0, file.size_bytes)
    first_line = max(1, _int_param(request, "line", 1, file.resource_count + 1))
    count = max(1, _int_param(request, "n", PREVIEW_LINES, MAX_PREVIEW_LINES))
    with get_storage().open_range(file.storage_key, offset, PAGE_WINDOW) as handle:
        page = read_page(
            handle, offset=offset, size=file.size_bytes, first_line=first_line, count=count
        )
    query = request.GET.get("q", "").strip()
    lines = (
        [line for line in page.lines if query.lower() in line.text.lower()] if query else page.lines
    )
    last_line = first_line + len(page.lines) - 1
    part = Part(first_line, last_line, offset=offset, filter=query, matches=len(lines))
    record_file_read(request, file, part=part)
    next_query = (
        urlencode({"offset": page.next_offset, "line": first_line + len(page.lines), "n": count})
        if page.next_offset is not None
        else ""
    )
    context = {
        "file": file,
        "job": file.job,
        "lines": lines,
        "page": page,
        "q": query,
        "n": count,
        "offset": offset,
        "first_line": first_line,
        "last_line": last_line,
        "next_query": next_query,
    }
    return render(request, "exports/file_preview.html", context)


@require_GET
@permission_required(RUN_EXPORTS)
def file_download(request: HttpRequest, file_id: str) -> HttpResponse:
    file = get_file_for_user(request, file_id)
    record_file_read(request, file, action=DOWNLOAD)
    name = f"{file.resource_type}-{file.uuid}.ndjson"
    return FileResponse(
        get_storage().open_reader(file.storage_key),
        as_attachment=True,
        filename=name,
        content_type="application/fhir+ndjson",
    )
