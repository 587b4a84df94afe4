"""Role checks for console views: login first, then the permission, else 403."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from accounts.roles import perm, roles_granting
from bulkops.fhir.text import plain_list

View = Callable[..., HttpResponse]


def needs_role(codenames: tuple[str, ...]) -> str:
    """What the 403 page says: the roles that may open the page."""
    roles = roles_granting(codenames)
    if not roles:
        return "This page needs permissions that no built-in role holds alone."
    names = plain_list(roles).replace(" and ", " or ")
    return f"This page needs the {names} role."


def permission_required(*codenames: str) -> Callable[[View], View]:
    """Anonymous users go to the login page; logged-in users without every one of
    `codenames` get 403.

    Checked in the view, never only in a template: htmx fragments render without
    the page around them.
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.has_perms([perm(codename) for codename in codenames]):
                raise PermissionDenied(needs_role(codenames))
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator
