"""Console page where operators create and revoke their personal API tokens.

A new token's value appears once, in the response to the POST that created it (never
cached, never stored); afterwards only its name and non-secret prefix are shown.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.decorators import permission_required
from accounts.models import ApiToken
from accounts.roles import VIEW_CONSOLE
from accounts.services import create_api_token, revoke_api_token


@never_cache
@require_http_methods(["GET", "POST"])
@permission_required(VIEW_CONSOLE)
def api_tokens(request: HttpRequest) -> HttpResponse:
    context: dict[str, object] = {"errors": {}, "name": ""}
    if request.method == "POST":
        context["name"] = request.POST.get("name", "")
        try:
            issued = create_api_token(user=request.user, name=context["name"], request=request)
        except ValidationError as error:
            context["errors"] = error.message_dict
        else:
            context["issued"] = issued
            context["name"] = ""
    context["tokens"] = ApiToken.objects.filter(user=request.user)
    status = 400 if context["errors"] else 200
    return render(request, "accounts/api_tokens.html", context, status=status)


@require_POST
@permission_required(VIEW_CONSOLE)
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = revoke_api_token(user=request.user, token_id=token_id, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Token {token.name!r} ({token.prefix}…) revoked.")
    return redirect("console:api-tokens")
