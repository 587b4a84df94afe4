"""`manage.py operator list|create|set-role|deactivate|reactivate|reset-password`: the
console's Operators pages from a shell, through the same services (same rules, audited
as the command line). `create_operator` and `reset_password` run the same code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.utils import timezone

from accounts.operators import (
    counted,
    deactivate_operator,
    operators,
    reactivate_operator,
    role_of,
    set_operator_role,
)
from accounts.roles import Role
from accounts.services import create_operator, reset_operator_password


def operator_named(username: str) -> AbstractUser:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No operator is called {username!r}.")
    return user


def refused(error: ValidationError) -> CommandError:
    return CommandError("; ".join(error.messages))


def create(out: OutputWrapper, *, username: str, role: str, email: str) -> None:
    try:
        user, password = create_operator(username=username, role=role, email=email)
    except ValidationError as error:
        raise refused(error) from None
    out.write(f"Created {role} {user.username!r}.")
    out.write(f"Password (shown once): {password}")


def reset_password(out: OutputWrapper, *, username: str) -> None:
    password = reset_operator_password(user=operator_named(username), admin=None)
    out.write(f"New password for {username!r} (shown once): {password}")


def list_operators(out: OutputWrapper) -> None:
    rows = [("USERNAME", "ROLE", "STATUS", "LAST SIGN-IN", "API TOKENS")]
    for user in operators():
        last = timezone.localtime(user.last_login) if user.last_login else None
        rows.append(
            (
                user.username,
                role_of(user) or "none",
                "active" if user.is_active else "deactivated",
                f"{last:%Y-%m-%d %H:%M %Z}" if last else "never",
                str(user.api_token_count),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def set_role(out: OutputWrapper, *, username: str, role: str) -> None:
    set_operator_role(user=operator_named(username), role=role, actor=None)
    out.write(f"{username!r} is now {role}.")


def deactivate(out: OutputWrapper, *, username: str) -> None:
    ended = deactivate_operator(user=operator_named(username), actor=None)
    sessions = counted(ended.sessions_ended, "session")
    tokens = counted(ended.api_tokens_revoked, "API token")
    out.write(f"Deactivated {username!r}: {sessions} ended, {tokens} revoked.")


def reactivate(out: OutputWrapper, *, username: str) -> None:
    reactivate_operator(user=operator_named(username), actor=None)
    out.write(f"{username!r} may sign in again (their old API tokens stay revoked).")


SUBCOMMANDS: dict[str, Callable[..., None]] = {
    "list": list_operators,
    "create": create,
    "set-role": set_role,
    "deactivate": deactivate,
    "reactivate": reactivate,
    "reset-password": reset_password,
}


class Command(BaseCommand):
    help = (
        "Manage console operators: list, create, set-role, deactivate, reactivate, "
        "reset-password. Audited as the command line; passwords are printed once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        commands.add_parser("list", help="operators with role, status, last sign-in, tokens")
        new = commands.add_parser("create", help="add an operator; prints a password once")
        new.add_argument("username")
        new.add_argument("--role", required=True, choices=Role.values)
        new.add_argument("--email", default="")
        role = commands.add_parser("set-role", help="give an operator exactly this role")
        role.add_argument("username")
        role.add_argument("role", choices=Role.values)
        for name, text in (
            ("deactivate", "stop sign-in; end their sessions and revoke their API tokens"),
            ("reactivate", "let a deactivated operator sign in again"),
            ("reset-password", "new generated password, printed once; sessions ended"),
        ):
            commands.add_parser(name, help=text).add_argument("username")

    def handle(self, *args: object, subcommand: str, **options: Any) -> None:
        known = {"username", "role", "email"}
        arguments = {name: value for name, value in options.items() if name in known}
        try:
            SUBCOMMANDS[subcommand](self.stdout, **arguments)
        except ValidationError as error:
            raise refused(error) from None
