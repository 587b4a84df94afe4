"""SMART scopes: parsing v1 and v2 syntax, granting at the token endpoint, read access.

Spec §7.9: `system/<Type|*>.<perm>[?param=value&...]`. v1 permissions `read`, `write`,
`*`; v2 permissions are an ordered subset of `cruds`. v1 maps onto v2 (`read` = `rs`,
`write` = `cud`, `*` = `cruds`) so all maths happens on permission sets and the v1/v2
spelling only matters when a scope is written back for the client.

Granular scopes (`system/Observation.rs?category=...`) are parsed and can be granted, but
they never count as unrestricted read access: bulkops does not apply them as implicit
filters yet, so exporting the whole type under one would leak what the filter withholds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bulkops.fhir.resource_types import R4_RESOURCE_TYPES
from bulkops.fhir.text import plain_list

V2_ORDER = "cruds"
V1_PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset("rs"),
    "write": frozenset("cud"),
    "*": frozenset(V2_ORDER),
}
# Not a resource scope: the permission to send `$bulk-submit` and poll its status (spec
# digest bulk-data-v4-ballot.md §3.2), granted when registered and requested.
BULK_SUBMIT = "system/bulk-submit"
OPERATION_SCOPES = (BULK_SUBMIT,)
_SCOPE = re.compile(r"^(system|patient|user)/([A-Za-z]+|\*)\.([a-z]+|\*)(?:\?(.+))?$")


@dataclass(frozen=True)
class SmartScope:
    """One parsed resource scope; `query` is the granular `?...` suffix or ""."""

    context: str
    resource_type: str
    permissions: frozenset[str]
    v1: bool
    query: str = ""

    @property
    def all_types(self) -> bool:
        return self.resource_type == "*"

    def covers(self, other: SmartScope) -> bool:
        """Whether this scope grants everything `other` grants."""
        return (
            self.context == other.context
            and self.resource_type in ("*", other.resource_type)
            and other.permissions <= self.permissions
            and self.query in ("", other.query)
        )

    def __str__(self) -> str:
        return f"{self.context}/{self.resource_type}.{self._permission_text()}" + (
            f"?{self.query}" if self.query else ""
        )

    def _permission_text(self) -> str:
        # Answer in v1 syntax when v1 was asked and v1 can say it (spec §7.9).
        if self.v1 and not self.query:
            for name, permissions in V1_PERMISSIONS.items():
                if permissions == self.permissions:
                    return name
        return "".join(letter for letter in V2_ORDER if letter in self.permissions)


def parse_scope(text: str) -> SmartScope | None:
    """The resource scope `text` names, or None for anything else (`launch`, `openid`,
    `offline_access`, unknown types, out-of-order or unknown permissions)."""
    match = _SCOPE.match(text)
    if match is None:
        return None
    context, resource_type, permission_text, query = match.groups()
    if resource_type != "*" and resource_type not in R4_RESOURCE_TYPES:
        return None
    if permission_text in V1_PERMISSIONS:
        if query:  # v1 has no granular form; never read it as the unrestricted scope
            return None
        return SmartScope(context, resource_type, V1_PERMISSIONS[permission_text], True)
    if not _is_ordered_subset(permission_text):
        return None
    return SmartScope(context, resource_type, frozenset(permission_text), False, query or "")


def _is_ordered_subset(letters: str) -> bool:
    positions = [V2_ORDER.find(letter) for letter in letters]
    return -1 not in positions and positions == sorted(set(positions))


def parse_system_scopes(text: str) -> list[SmartScope]:
    """The `system/` resource scopes in a space-separated scope string, in order."""
    parsed = (parse_scope(part) for part in text.split())
    return [scope for scope in parsed if scope is not None and scope.context == "system"]


def _meet(requested: SmartScope, allowed: SmartScope) -> SmartScope | None:
    """The largest scope both grant, spelt the way the client asked, or None."""
    if requested.all_types:
        resource_type = allowed.resource_type
    elif allowed.resource_type in ("*", requested.resource_type):
        resource_type = requested.resource_type
    else:
        return None
    if requested.query and allowed.query and requested.query != allowed.query:
        return None
    permissions = requested.permissions & allowed.permissions
    if not permissions:
        return None
    query = requested.query or allowed.query
    return SmartScope("system", resource_type, permissions, requested.v1, query)


def grant_scopes(requested: str, allowed: str) -> list[str]:
    """The scopes to grant: `requested` ∩ `allowed` (spec §7.5 step 10).

    Only `system/` scopes are grantable; `launch*`, `openid`, `offline_access`,
    `patient/` and `user/` scopes need context a backend client cannot have and are
    dropped. A wildcard request narrows to the allowed types; the granted scopes keep
    the client's v1/v2 spelling. Scopes another granted scope covers are left out.
    """
    allowed_scopes = parse_system_scopes(allowed)
    granted: list[SmartScope] = []
    for wanted in parse_system_scopes(requested):
        for permitted in allowed_scopes:
            scope = _meet(wanted, permitted)
            if scope is not None and scope not in granted:
                granted.append(scope)
    kept = [
        scope
        for scope in granted
        if not any(other != scope and other.covers(scope) for other in granted)
    ]
    operations = [s for s in OPERATION_SCOPES if s in requested.split() and s in allowed.split()]
    return [str(scope) for scope in kept] + operations


@dataclass(frozen=True)
class ReadAccess:
    """Which resource types a set of granted scopes lets a client read (and export)."""

    all_types: bool
    types: frozenset[str]
    scopes: tuple[str, ...]

    def allows(self, resource_type: str) -> bool:
        return self.all_types or resource_type in self.types

    def describe(self) -> str:
        """What is granted, in plain language: "system/Patient.read and system/Group.rs"."""
        return plain_list(list(self.scopes)) if self.scopes else "no scopes"

    def explain_withheld(self, resource_types: Iterable[str]) -> str:
        """Why `resource_types` are withheld, e.g. "Observation and Condition were
        requested but this client's token only grants system/Patient.read"."""
        names = list(dict.fromkeys(resource_types))
        verb = "was" if len(names) == 1 else "were"
        grants = self.describe()
        return f"{plain_list(names)} {verb} requested but this client's token only grants {grants}"


def may_create(scopes: Iterable[str], resource_type: str) -> bool:
    """Whether granted scopes let a client create `resource_type` (`c`, v1 `write`),
    with no granular suffix, which a create could not honour."""
    return any(
        "c" in scope.permissions and not scope.query and scope.resource_type in ("*", resource_type)
        for scope in parse_system_scopes(" ".join(scopes))
    )


def read_scope(resource_type: str) -> str:
    """The v1 scope that lets a client read `resource_type`, for error messages."""
    return f"system/{resource_type}.read"


def readable_types(scopes: Iterable[str]) -> ReadAccess:
    """Read access from granted scopes: a `system/` scope with `r` (v1 `read` or `*`)
    for a type or `*`, without a granular `?` suffix (see the module docstring)."""
    scope_list = tuple(scopes)
    readable = [
        scope
        for scope in parse_system_scopes(" ".join(scope_list))
        if "r" in scope.permissions and not scope.query
    ]
    return ReadAccess(
        all_types=any(scope.all_types for scope in readable),
        types=frozenset(scope.resource_type for scope in readable if not scope.all_types),
        scopes=scope_list,
    )
