"""Pulling a submitter's manifests and files through the guarded outbound client.

Every fetch sends the submitter's fileRequestHeader pairs (spec digest §3.2: treated as
SHALL for manifests and files). Redirects are followed for files only when no such header
is sent: a header may be a credential, and httpx keeps custom headers on a redirect to
another origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from django.conf import settings

from bulkops import outbound

MAX_MANIFEST_BYTES = 10 * 1024 * 1024
MAX_MANIFEST_PAGES = 1000


def manifest_pages(url: str, headers: Mapping[str, str]) -> list[dict[str, Any]]:
    """The manifest at `url` and every page its `link` next leads to (spec §3.1 step 2),
    or FetchError saying which page failed and why."""
    pages: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url and len(pages) < MAX_MANIFEST_PAGES:
        pages.append(_manifest_page(next_url, headers))
        next_url = _next_link(pages[-1], next_url)
    return pages


def _manifest_page(url: str, headers: Mapping[str, str]) -> dict[str, Any]:
    answer = outbound.request(
        "GET",
        url,
        headers={"Accept": "application/json", **headers},
        timeout=settings.BULKOPS_SUBMIT_FETCH_TIMEOUT,
        max_bytes=MAX_MANIFEST_BYTES,
    )
    if answer.status != 200:
        raise outbound.FetchError(f"the manifest {url} was answered with HTTP {answer.status}")
    try:
        page = answer.json()
    except ValueError:
        raise outbound.FetchError(f"the manifest {url} is not JSON") from None
    if not isinstance(page, dict) or not isinstance(page.get("output", []), list):
        raise outbound.FetchError(f"the manifest {url} is not a Bulk Data manifest")
    return page


def _next_link(page: dict[str, Any], page_url: str) -> str | None:
    for link in page.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return urljoin(page_url, str(link["url"]))
    return None


def download(url: str, headers: Mapping[str, str], path: Path) -> int:
    """Write the file at `url` to `path`; its size, or FetchError. Each network wait is
    bounded by BULKOPS_SUBMIT_FETCH_TIMEOUT, the whole download by
    BULKOPS_SUBMIT_FILE_DEADLINE, so a provider that drips bytes cannot hold a worker."""
    size = 0
    with (
        outbound.stream(
            "GET",
            url,
            headers={"Accept": "application/fhir+ndjson", **headers},
            timeout=settings.BULKOPS_SUBMIT_FETCH_TIMEOUT,
            deadline_seconds=settings.BULKOPS_SUBMIT_FILE_DEADLINE,
            follow_redirects=not headers,
        ) as answer,
        path.open("wb") as out,
    ):
        if answer.status != 200:
            raise outbound.FetchError(f"the file server answered HTTP {answer.status}")
        for chunk in answer.chunks:
            out.write(chunk)
            size += len(chunk)
    return size


@dataclass(frozen=True)
class OutputItem:
    """One output file a manifest lists; `count` is the number of resources the manifest
    says it holds, None when it says nothing usable (the field is optional)."""

    resource_type: str
    url: str
    count: int | None


def output_items(page: dict[str, Any], page_url: str) -> list[OutputItem]:
    """Each output file a manifest page lists, its url made absolute."""
    items = []
    for index, item in enumerate(page.get("output") or []):
        if not isinstance(item, dict) or not item.get("type") or not item.get("url"):
            raise outbound.FetchError(f"output[{index}] of {page_url} has no type or url")
        count = item.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            count = None
        items.append(OutputItem(str(item["type"]), urljoin(page_url, str(item["url"])), count))
    return items
