"""`{% group_name id %}`: a Group by its name, the id second, wherever a page shows one
(export lists and titles, a client's group bindings). The names are read once per
request, whatever the number of rows."""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest

from fhirstore.reads import group_names

register = template.Library()


@register.inclusion_tag("fhirstore/partials/group_name.html", takes_context=True)
def group_name(context: template.Context, group_id: str) -> dict[str, Any]:
    return {"group_id": group_id, "name": _names(context.get("request")).get(group_id, "")}


def _names(request: HttpRequest | None) -> dict[str, str]:
    if request is None:
        return group_names()
    if not hasattr(request, "_group_names"):
        request._group_names = group_names()  # type: ignore[attr-defined]
    return request._group_names  # type: ignore[attr-defined, no-any-return]
