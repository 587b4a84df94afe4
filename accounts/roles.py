"""Operator roles: Django groups holding the console permissions.

admin manages backend clients and operators (and may do everything else), operator
launches and manages exports, auditor reads everything including the audit trail but
changes nothing. Views check permissions, never group names: a role is what its
permissions allow.
"""

from __future__ import annotations

from django.db import models

VIEW_CONSOLE = "view_console"
RUN_EXPORTS = "run_exports"
MANAGE_CLIENTS = "manage_clients"
MANAGE_OPERATORS = "manage_operators"
VIEW_AUDIT = "view_audit"

PERMISSIONS: tuple[tuple[str, str], ...] = (
    (VIEW_CONSOLE, "See the operator console"),
    (RUN_EXPORTS, "Launch, cancel and delete exports"),
    (MANAGE_CLIENTS, "Register, change and disable backend clients"),
    (MANAGE_OPERATORS, "Create operators and change their roles"),
    (VIEW_AUDIT, "Read the audit trail"),
)


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    OPERATOR = "operator", "Operator"
    AUDITOR = "auditor", "Auditor"


ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.ADMIN: frozenset(code for code, _ in PERMISSIONS),
    Role.OPERATOR: frozenset({VIEW_CONSOLE, RUN_EXPORTS}),
    Role.AUDITOR: frozenset({VIEW_CONSOLE, VIEW_AUDIT}),
}


def roles_granting(codenames: tuple[str, ...]) -> list[str]:
    """The roles that hold every one of `codenames`, least powerful first, e.g.
    ["operator", "admin"] for RUN_EXPORTS: what a 403 page tells people to ask for."""
    order = [Role.AUDITOR, Role.OPERATOR, Role.ADMIN]
    return [str(role) for role in order if set(codenames) <= ROLE_PERMISSIONS[role]]


def perm(codename: str) -> str:
    """The dotted name Django's permission checks take, e.g. perm(VIEW_AUDIT)."""
    return f"accounts.{codename}"
