"""Console pages for operators: the list, adding one, an operator's page with their role,
status and API tokens, and the actions on it (admins only); and every operator's own
settings page. Changes go through accounts.services and accounts.operators, which
validate and audit them.

A generated password appears once, in the response to the POST that made it (never
cached, never in a message or the session).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import permission_required
from accounts.forms import OperatorForm, RoleForm, TimeZoneForm
from accounts.models import ApiToken
from accounts.operators import (
    counted,
    deactivate_operator,
    operators,
    reactivate_operator,
    role_of,
    set_operator_role,
)
from accounts.roles import MANAGE_OPERATORS, VIEW_CONSOLE
from accounts.services import create_operator, reset_operator_password
from accounts.time_zones import chosen_time_zone, set_time_zone, time_zone_of


def get_operator(user_id: int) -> AbstractUser:
    """The operator addressed by id, with their role and token count; 404 otherwise."""
    return get_object_or_404(operators(), pk=user_id)


def _refusal(error: ValidationError) -> str:
    return " ".join(error.messages)


@require_GET
@permission_required(MANAGE_OPERATORS)
def operator_list(request: HttpRequest) -> HttpResponse:
    rows = [{"operator": user, "role": role_of(user)} for user in operators()]
    return render(request, "accounts/operator_list.html", {"rows": rows})


@never_cache
@require_http_methods(["GET", "POST"])
@permission_required(MANAGE_OPERATORS)
def operator_create(request: HttpRequest) -> HttpResponse:
    """Add an operator; the response shows their generated password once."""
    form = OperatorForm(request.POST or None)
    context: dict[str, Any] = {"form": form}
    if request.method == "POST" and form.is_valid():
        try:
            user, password = create_operator(
                **form.cleaned_data, created_by=request.user, request=request
            )
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                for problem in problems:
                    form.add_error(field if field in form.fields else None, problem)
        else:
            context.update(created=user, password=password, form=OperatorForm())
    status = 400 if form.errors else 200
    return render(request, "accounts/operator_create.html", context, status=status)


@require_GET
@permission_required(MANAGE_OPERATORS)
def operator_detail(request: HttpRequest, user_id: int) -> HttpResponse:
    operator = get_operator(user_id)
    role = role_of(operator)
    context = {
        "operator": operator,
        "role": role,
        "role_form": RoleForm(initial={"role": role}),
        "tokens": ApiToken.objects.filter(user=operator),
        "time_zone": time_zone_of(operator),
        "is_you": operator.pk == request.user.pk,
    }
    return render(request, "accounts/operator_detail.html", context)


@require_POST
@permission_required(MANAGE_OPERATORS)
def operator_set_role(request: HttpRequest, user_id: int) -> HttpResponse:
    operator = get_operator(user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles admin, operator or auditor.")
        return redirect("console:operator-detail", user_id=operator.pk)
    role = form.cleaned_data["role"]
    try:
        set_operator_role(user=operator, role=role, actor=request.user, request=request)
    except ValidationError as error:
        messages.error(request, _refusal(error))
    else:
        messages.success(request, f"{operator.username} is now {role}.")
    return redirect("console:operator-detail", user_id=operator.pk)


@require_POST
@permission_required(MANAGE_OPERATORS)
def operator_set_status(request: HttpRequest, user_id: int, action: str) -> HttpResponse:
    """Deactivate (sessions and API tokens ended at once) or reactivate an operator."""
    operator = get_operator(user_id)
    try:
        if action == "deactivate":
            ended = deactivate_operator(user=operator, actor=request.user, request=request)
            done = (
                f"{operator.username} is deactivated: {counted(ended.sessions_ended, 'session')}"
                f" ended, {counted(ended.api_tokens_revoked, 'API token')} revoked."
            )
        else:
            reactivate_operator(user=operator, actor=request.user, request=request)
            done = f"{operator.username} may sign in again."
    except ValidationError as error:
        messages.error(request, _refusal(error))
    else:
        messages.success(request, done)
    return redirect("console:operator-detail", user_id=operator.pk)


@never_cache
@require_http_methods(["GET", "POST"])
@permission_required(MANAGE_OPERATORS)
def operator_password_reset(request: HttpRequest, user_id: int) -> HttpResponse:
    """GET asks the admin to confirm; POST gives the operator a generated password,
    shown once in this response, and signs them out everywhere."""
    operator = get_object_or_404(get_user_model(), pk=user_id)
    context: dict[str, Any] = {"operator": operator}
    if request.method == "POST":
        context["password"] = reset_operator_password(
            user=operator, admin=request.user, request=request
        )
    return render(request, "accounts/operator_password_reset.html", context)


@require_http_methods(["GET", "POST"])
@permission_required(VIEW_CONSOLE)
def profile(request: HttpRequest) -> HttpResponse:
    """The signed-in operator's own settings: the time zone the console shows times in."""
    chosen = chosen_time_zone(request.user)
    form = TimeZoneForm(request.POST or None, initial={"time_zone": chosen})
    if request.method == "POST" and form.is_valid():
        zone = set_time_zone(
            user=request.user, time_zone=form.cleaned_data["time_zone"], request=request
        )
        messages.success(request, f"Times are now shown in {zone}.")
        return redirect("console:profile")
    status = 400 if form.errors else 200
    return render(request, "accounts/profile.html", {"form": form}, status=status)
