"""Who may call the operator JSON API: personal API tokens, and the console's roles.

`ApiTokenAuthentication` reads `Authorization: Token <raw>`; session authentication (with
DRF's CSRF check) stays available for the console's own calls. `RolePermission` maps the
console's permission codenames onto DRF, so an API call is allowed exactly when the same
operator could do the same thing in the console.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from accounts.models import ApiToken, hash_token
from accounts.roles import VIEW_CONSOLE, perm

if TYPE_CHECKING:  # importing DRF's views here would be circular: DRF loads this module
    from rest_framework.views import APIView

KEYWORD = "Token"  # noqa: S105 - the Authorization scheme, not a secret
# last_used_at is for the operator's token list; writing it on every call would make
# each read a write, so it is refreshed at most this often.
LAST_USED_PRECISION = timedelta(minutes=1)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <raw>` → the token's operator, if the token is active."""

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, ApiToken] | None:
        scheme, _, raw = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != KEYWORD.lower():
            return None
        raw = raw.strip()
        if not raw or " " in raw:
            raise exceptions.AuthenticationFailed("Send the header as 'Token <token>'.")
        token = (
            ApiToken.objects.active().select_related("user").filter(token_hash=hash_token(raw))
        ).first()
        if token is None:
            raise exceptions.AuthenticationFailed("The API token is unknown or revoked.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # Makes unauthenticated calls 401 with a challenge rather than 403.
        return KEYWORD


class RolePermission(permissions.BasePermission):
    """Allow a view's `read_permission` for safe methods, `write_permission` otherwise.

    Both are console codenames from accounts.roles; anonymous callers are refused
    before any role is looked at, so they get 401, and a user without the role 403.
    """

    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if not hasattr(view, request.method.lower()):
            return True  # DRF answers 405 Method Not Allowed next
        # Views without their own (the schema and its docs page) need the console role.
        needed = (
            getattr(view, "read_permission", VIEW_CONSOLE)
            if request.method in permissions.SAFE_METHODS
            else getattr(view, "write_permission", "")
        )
        return bool(request.user.has_perm(perm(needed)))
