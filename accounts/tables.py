"""Sorting and paging for console tables: `?sort=` picks from a fixed map (never a field
name taken from the request), Django's Paginator cuts the page, and the query strings
that sort links and page links need are built once here."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest


def sorted_page(
    request: HttpRequest, rows: QuerySet[Any], *, sorts: dict[str, Any], default: str, per_page: int
) -> dict[str, Any]:
    """Template context for one page of `rows` in the requested order: `page`, `sort`,
    `base_query` (filters and sort, for page links) and `filter_query` (filters only,
    for sort links)."""
    sort = request.GET.get("sort", default)
    if sort not in sorts:
        sort = default
    page = Paginator(rows.order_by(sorts[sort], "-pk"), per_page).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    base_query = query.urlencode()
    query.pop("sort", None)
    return {"page": page, "sort": sort, "base_query": base_query, "filter_query": query.urlencode()}
