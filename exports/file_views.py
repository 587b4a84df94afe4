"""Console views for export files: the NDJSON browser (pages, previous and next, jump to
a line, a search of the whole file; byte-range reads, escaped), its CSV, and the operator
download. Every page of a preview and every download is audited
(exports/file_audit.py): they show patient data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urlencode

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from accounts.decorators import permission_required
from accounts.roles import RUN_EXPORTS, VIEW_CONSOLE
from exports.file_audit import DOWNLOAD, Part, record_file_read
from exports.lines_csv import write_lines_csv
from exports.models import ExportFile
from exports.ndjson_search import Cursor, Found, describe_filter, find_line, matcher_for, search
from exports.preview import (
    MAX_LINE_BYTES,
    PAGE_WINDOW,
    PreviewLine,
    page_before,
    read_page,
)
from exports.storage import job_storage

PREVIEW_LINES = 50
MAX_PREVIEW_LINES = 500
MAX_BACK_STEPS = 20  # earlier search starts kept in the URL for "previous matches"
MAX_FILTER_CHARS = 500  # a search longer than this is cut: no resource element is longer


def get_file_for_user(request: HttpRequest, file_id: str) -> ExportFile:
    """A file of a job whose files still exist; deleted jobs' files are gone (404)."""
    return get_object_or_404(
        ExportFile.objects.select_related("job"), uuid=file_id, job__deleted_at__isnull=True
    )


def search_text(request: HttpRequest) -> str:
    return request.GET.get("q", "").strip()[:MAX_FILTER_CHARS]


def _int_param(request: HttpRequest, name: str, default: int, maximum: int) -> int:
    try:
        return max(0, min(int(request.GET.get(name, default)), maximum))
    except ValueError:
        return default


@dataclass(frozen=True)
class Row:
    """A line as the browser lists it; a search match also says where it starts and
    which matches come before and after it on the page."""

    line: PreviewLine
    offset: int | None = None
    previous: int | None = None
    next: int | None = None


def _match_rows(found: list[Found]) -> list[Row]:
    numbers = [match.line.number for match in found]
    return [
        Row(
            match.line,
            match.offset,
            numbers[index - 1] if index else None,
            numbers[index + 1] if index + 1 < len(numbers) else None,
        )
        for index, match in enumerate(found)
    ]


@dataclass
class View:
    """What one request shows of a file: the lines, the words and links around them,
    and the part of the file that is recorded as read."""

    lines: list[PreviewLine]
    part: Part
    context: dict[str, Any] = field(default_factory=dict)


def view_file(request: HttpRequest, file: ExportFile) -> View:
    """The page, search results or jump target that the query string asks for; the
    preview page and its CSV show the same lines."""
    count = max(1, _int_param(request, "n", PREVIEW_LINES, MAX_PREVIEW_LINES))
    start = Cursor(
        _int_param(request, "offset", 0, file.size_bytes),
        max(1, _int_param(request, "line", 1, file.resource_count + 1)),
    )
    query = search_text(request)
    if query:
        return _search_view(request, file, start, query, count)
    if "goto" in request.GET:
        target = max(1, _int_param(request, "goto", 1, max(file.resource_count, 1)))
        return _goto_view(file, start if target >= start.line else Cursor(0, 1), target, count)
    if "before" in request.GET and start.offset:
        start = _page_start_before(file, start, count)
    return _page_view(file, start, count)


def _page_view(file: ExportFile, start: Cursor, count: int, **context: Any) -> View:
    with job_storage(file.job).open_range(file.storage_key, start.offset, PAGE_WINDOW) as handle:
        page = read_page(
            handle, offset=start.offset, size=file.size_bytes, first_line=start.line, count=count
        )
    last_line = start.line + len(page.lines) - 1
    context |= {
        "mode": "page",
        "rows": [Row(line) for line in page.lines],
        "bytes_read": page.bytes_read,
        "first_line": start.line,
        "last_line": last_line,
        "next_query": _query(page.next_offset, start.line + len(page.lines), count),
        "previous_query": (
            urlencode({"offset": start.offset, "line": start.line, "n": count, "before": 1})
            if start.offset
            else ""
        ),
    }
    return View(page.lines, Part(start.line, last_line, offset=start.offset), context)


def _page_start_before(file: ExportFile, end: Cursor, count: int) -> Cursor:
    """Where the `count` lines before `end` start: one window read backwards."""
    window_start = max(0, end.offset - PAGE_WINDOW)
    with job_storage(file.job).open_range(
        file.storage_key, window_start, end.offset - window_start
    ) as handle:
        offset, lines = page_before(
            handle, window_start=window_start, offset=end.offset, count=count
        )
    return Cursor(offset, max(1, end.line - lines))


def _limits() -> dict[str, Any]:
    return {
        "max_bytes": settings.BULKOPS_PREVIEW_SEARCH_BYTES,
        "max_seconds": settings.BULKOPS_PREVIEW_SEARCH_MS / 1000,
    }


def _search_window(file: ExportFile, start: Cursor) -> BinaryIO:
    """The bytes one search request may read: its budget and the line it ends in."""
    length = settings.BULKOPS_PREVIEW_SEARCH_BYTES + MAX_LINE_BYTES
    return job_storage(file.job).open_range(file.storage_key, start.offset, length)


def _search_view(
    request: HttpRequest, file: ExportFile, start: Cursor, query: str, count: int
) -> View:
    earlier = _int_param(request, "found", 0, file.resource_count)
    back = request.GET.get("back", "")
    with _search_window(file, start) as handle:
        result = search(
            handle,
            start=start,
            size=file.size_bytes,
            matches=matcher_for(query),
            want=count,
            **_limits(),
        )
    here = f"{start.offset}-{start.line}-{earlier}"
    steps = [step for step in back.split(",") if step][-MAX_BACK_STEPS:]
    next_query = ""
    if result.resume is not None:
        next_query = urlencode(
            {
                "q": query,
                "n": count,
                "offset": result.resume.offset,
                "line": result.resume.line,
                "found": earlier + len(result.found),
                "back": ",".join([*steps, here][-MAX_BACK_STEPS:]),
            }
        )
    context = {
        "mode": "search",
        "rows": _match_rows(result.found),
        "found": result.found,
        "first_match": earlier + 1,
        "total_matches": earlier + len(result.found),
        "meaning": describe_filter(query),
        "bytes_read": result.bytes_read,
        "first_line": start.line,
        "last_line": result.last_line,
        "searched_to": start.offset + result.bytes_read,
        "from_start": start.offset == 0,
        "out_of_budget": result.out_of_budget,
        "next_query": next_query,
        "previous_query": _previous_matches(query, count, steps),
    }
    part = Part(
        start.line,
        result.last_line,
        offset=start.offset,
        filter=query,
        matches=len(result.found),
    )
    return View([match.line for match in result.found], part, context)


def _previous_matches(query: str, count: int, steps: list[str]) -> str:
    """The query string of the search request before this one, from the `back` trail."""
    if not steps:
        return ""
    try:
        offset, line, earlier = (int(value) for value in steps[-1].split("-"))
    except ValueError:
        return ""
    return urlencode(
        {
            "q": query,
            "n": count,
            "offset": offset,
            "line": line,
            "found": earlier,
            "back": ",".join(steps[:-1]),
        }
    )


def _goto_view(file: ExportFile, start: Cursor, target: int, count: int) -> View:
    with _search_window(file, start) as handle:
        result = find_line(handle, start=start, size=file.size_bytes, target=target, **_limits())
    if result.found:
        reached = Cursor(result.found[0].offset, result.found[0].line.number)
        return _page_view(file, reached, count)
    if result.resume is None:  # fewer lines than asked for: show the first ones
        return _page_view(file, Cursor(0, 1), count)
    context = {
        "mode": "goto",
        "target": target,
        "bytes_read": result.bytes_read,
        "first_line": start.line,
        "last_line": result.last_line,
        "searched_to": start.offset + result.bytes_read,
        "next_query": urlencode(
            {
                "goto": target,
                "n": count,
                "offset": result.resume.offset,
                "line": result.resume.line,
            }
        ),
    }
    return View([], Part(start.line, start.line - 1, offset=start.offset), context)


def _query(offset: int | None, line: int, count: int) -> str:
    return urlencode({"offset": offset, "line": line, "n": count}) if offset is not None else ""


@require_GET
@permission_required(VIEW_CONSOLE)
def file_preview(request: HttpRequest, file_id: str) -> HttpResponse:
    """A page, a search or a jump within an NDJSON file: each reads a bounded window from
    a byte offset, so a 5 GB file never reads more than that."""
    file = get_file_for_user(request, file_id)
    shown = view_file(request, file)
    record_file_read(request, file, part=shown.part)
    context = shown.context | {
        "file": file,
        "job": file.job,
        "lines": shown.lines,
        "q": search_text(request),
        "n": max(1, _int_param(request, "n", PREVIEW_LINES, MAX_PREVIEW_LINES)),
        "offset": shown.part.offset,
        "csv_query": request.GET.urlencode(),
    }
    return render(request, "exports/file_preview.html", context)


@require_GET
@permission_required(VIEW_CONSOLE)
def file_preview_csv(request: HttpRequest, file_id: str) -> HttpResponse:
    """The lines the preview page shows, as CSV: line, type, id, lastUpdated and the
    summary facts, for a spreadsheet. Audited like the page."""
    file = get_file_for_user(request, file_id)
    shown = view_file(request, file)
    record_file_read(request, file, part=shown.part)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"{file.resource_type}-{file.uuid}-lines-{shown.part.first_line}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    write_lines_csv(response, shown.lines)
    return response


@require_GET
@permission_required(RUN_EXPORTS)
def file_download(request: HttpRequest, file_id: str) -> HttpResponse:
    file = get_file_for_user(request, file_id)
    record_file_read(request, file, action=DOWNLOAD)
    name = f"{file.resource_type}-{file.uuid}.ndjson"
    return FileResponse(
        job_storage(file.job).open_reader(file.storage_key),
        as_attachment=True,
        filename=name,
        content_type="application/fhir+ndjson",
    )
