"""Console forms: backend clients, operators, the audit filter, sign-in, the operator's
time zone. The client and operator forms only collect input: the services validate
(keys, scopes, groups; usernames, roles), and their errors are put back next to the
fields."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from allauth.account.forms import LoginForm
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from accounts.lockout import lockout_message
from accounts.models import AuditEvent, BackendClient
from accounts.roles import Role
from bulkops import untrusted_json
from bulkops.env import time_zone_names
from bulkops.fhir.resource_types import R4_RESOURCE_TYPES
from bulkops.fhir.scopes import parse_system_scopes, readable_types

MAX_JWKS_UPLOAD = 64 * 1024
ALL_TYPES = "*"
SYNTAX_CHOICES = [("v1", "SMART v1 (system/Patient.read)"), ("v2", "SMART v2 (system/Patient.rs)")]
# register_client's error keys → the form field the message belongs beside.
SERVICE_FIELDS = {
    "name": "name",
    "jwks": "jwks",
    "jwks_uri": "jwks_uri",
    "scopes": "scope_types",
    "group_ids": "groups",
}


def scope_string(types: list[str], syntax: str, extra: str) -> str:
    """The space-separated scopes a checklist selection stands for, plus typed extras."""
    permission = "read" if syntax == "v1" else "rs"
    chosen = [f"system/{name}.{permission}" for name in types]
    return " ".join(dict.fromkeys([*chosen, *extra.split()]))


_SIMPLE_SCOPE = re.compile(r"^system/(\*|[A-Za-z]+)\.(read|rs)$")


def scope_type_choices(stored: Mapping[str, int]) -> list[tuple[str, str]]:
    """Every R4 type for the checklist: `*`, then the types the store holds (with their
    counts), then the rest, each group by name."""
    with_data = sorted(name for name in stored if name in R4_RESOURCE_TYPES)
    rest = sorted(R4_RESOURCE_TYPES - set(with_data))
    return [
        (ALL_TYPES, "All types (*)"),
        *[(name, f"{name} ({stored[name]} stored)") for name in with_data],
        *[(name, name) for name in rest],
    ]


def checklist_initial(scopes: str) -> dict[str, Any]:
    """A registered scope string as the checklist shows it: the simple read scopes of
    one syntax ticked, every other scope in "Other scopes"."""
    simple = [_SIMPLE_SCOPE.match(scope) for scope in scopes.split()]
    permissions = [match.group(2) for match in simple if match]
    permission = permissions[0] if permissions else "read"
    ticked = [m.group(1) for m in simple if m and m.group(2) == permission]
    extra = [
        scope
        for scope, match in zip(scopes.split(), simple, strict=True)
        if not match or match.group(2) != permission
    ]
    return {
        "scope_types": ticked,
        "syntax": "v1" if permission == "read" else "v2",
        "extra_scopes": " ".join(extra),
    }


class ScopeChecklistForm(forms.Form):
    """The scope fields the register and edit pages share: a checklist of every R4 type
    (the types the store holds first), the SMART syntax, and typed extras. A set of
    scopes that would let the client read nothing is refused before anything is saved."""

    scope_types = forms.MultipleChoiceField(
        label="Resource types the client may export",
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    syntax = forms.ChoiceField(choices=SYNTAX_CHOICES, initial="v1", widget=forms.RadioSelect)
    extra_scopes = forms.CharField(
        label="Other scopes",
        required=False,
        help_text="Space-separated, e.g. system/Observation.rs?category=laboratory",
    )

    def __init__(self, *args: Any, stored: Mapping[str, int] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["scope_types"].choices = scope_type_choices(stored or {})

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if problem := reads_nothing(self.scopes()):
            self.add_error(self.field_for("scopes"), problem)
        return data

    def field_for(self, service_key: str) -> str | None:
        """The field a `register_client` or `update_client` error belongs beside."""
        if service_key == "scopes" and self.cleaned_data.get("extra_scopes"):
            return "extra_scopes"  # checklist scopes are always well-formed
        return SERVICE_FIELDS.get(service_key)

    def scopes(self) -> str:
        data = self.cleaned_data
        return scope_string(
            data.get("scope_types", []), data.get("syntax") or "v1", data.get("extra_scopes", "")
        )


def reads_nothing(scopes: str) -> str:
    """Why well-formed `scopes` would let a client export no resource type, or "" (the
    service explains empty and malformed scopes itself)."""
    names = scopes.split()
    if not names or not all(parse_system_scopes(name) for name in names):
        return ""
    access = readable_types(names)
    if access.all_types or access.types:
        return ""
    return (
        f"These scopes let the client read nothing, so it could export nothing: "
        f"{' '.join(names)} grant{'s' if len(names) == 1 else ''} no read of a whole type "
        "(write-only, or narrowed by a search). Tick a type, or add e.g. system/Patient.read."
    )


class ClientForm(ScopeChecklistForm):
    name = forms.CharField(max_length=200)
    jwks = forms.CharField(
        label="JWK Set (paste)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text="Public keys only, as a JSON object with a keys array.",
    )
    jwks_file = forms.FileField(label="…or upload a JWKS file", required=False)
    jwks_uri = forms.CharField(
        label="…or a JWKS URL",
        required=False,
        max_length=500,
        help_text="https URL where the client publishes its public keys.",
    )
    groups = forms.CharField(
        label="Bound groups",
        required=False,
        help_text="Group ids, space- or comma-separated; the client may export only these.",
    )

    def clean_jwks(self) -> Any:
        return _parse_json(self.cleaned_data["jwks"], "The pasted JWK Set")

    def clean_jwks_file(self) -> Any:
        upload = self.cleaned_data["jwks_file"]
        if upload is None:
            return None
        if upload.size > MAX_JWKS_UPLOAD:
            raise forms.ValidationError(f"The file is larger than {MAX_JWKS_UPLOAD} bytes.")
        return _parse_json(upload.read().decode("utf-8", "replace"), "The uploaded file")

    def key_source(self) -> tuple[Any, str | None, str]:
        """(inline JWK Set, jwks_uri, the field a key error belongs to)."""
        data = self.cleaned_data
        if data.get("jwks_file") is not None:
            return data["jwks_file"], data.get("jwks_uri") or None, "jwks_file"
        return data.get("jwks"), data.get("jwks_uri") or None, "jwks"

    def field_for(self, service_key: str) -> str | None:
        """The field a `register_client` error belongs beside."""
        if service_key == "jwks":
            return self.key_source()[2]
        return super().field_for(service_key)

    def group_ids(self) -> list[str]:
        return self.cleaned_data["groups"].replace(",", " ").split()


def _parse_json(text: str, what: str) -> Any:
    if not text.strip():
        return None
    try:
        return untrusted_json.loads(text)
    except ValueError:
        raise forms.ValidationError(f"{what} is not valid JSON.") from None


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False)
    client = forms.ChoiceField(label="Client", required=False)
    action = forms.ChoiceField(required=False)
    outcome = forms.ChoiceField(choices=[("", "any"), *AuditEvent.Outcome.choices], required=False)
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        actions = AuditEvent.objects.order_by("action").values_list("action", flat=True)
        self.fields["action"].choices = [("", "any")] + [(a, a) for a in actions.distinct()]
        clients = BackendClient.objects.order_by("name", "client_id")
        self.fields["client"].choices = [("", "any")] + list(
            clients.values_list("client_id", "name")
        )


class ClientEditForm(ScopeChecklistForm):
    name = forms.CharField(max_length=200)
    groups = forms.CharField(
        label="Bound groups",
        required=False,
        help_text="Group ids, space- or comma-separated; empty lets it export any data.",
    )

    def group_ids(self) -> list[str]:
        return self.cleaned_data["groups"].replace(",", " ").split()


class KeyForm(forms.Form):
    jwk = forms.CharField(
        label="New public key (JWK)",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text='One public JWK, or a JWK Set holding one key: {"kty": "RSA", "kid": ...}',
    )

    def clean_jwk(self) -> Any:
        value = _parse_json(self.cleaned_data["jwk"], "The key")
        if isinstance(value, dict) and isinstance(value.get("keys"), list):
            if len(value["keys"]) != 1:
                raise forms.ValidationError("Add one key at a time.")
            value = value["keys"][0]
        if not isinstance(value, dict):
            raise forms.ValidationError("A JWK is a JSON object.")
        return value


class ConsoleLoginForm(LoginForm):
    """allauth's sign-in form, which says so when a sign-in is refused because this
    username failed too often from this address (accounts/lockout.py), instead of
    blaming the password."""

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except ValidationError:
            if getattr(self.request, "axes_locked_out", False):
                raise ValidationError(lockout_message(), code="locked_out") from None
            raise


class OperatorForm(forms.Form):
    username = forms.CharField(
        max_length=150, help_text="Letters, digits and @ . + - _ only; they sign in with it."
    )
    role = forms.ChoiceField(choices=Role.choices)
    email = forms.EmailField(
        required=False,
        help_text="Optional: where a password reset link goes, if bulkops sends mail.",
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TimeZoneForm(forms.Form):
    time_zone = forms.ChoiceField(
        label="Time zone",
        required=False,
        help_text="The console shows every time in this zone; they are stored in UTC.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        default = [("", f"The site's default ({settings.TIME_ZONE})")]
        self.fields["time_zone"].choices = default + [(z, z) for z in sorted(time_zone_names())]
