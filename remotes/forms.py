"""Console forms for remote servers and remote exports. The launch form is the local
export form (exports.forms.LaunchForm) with what a remote needs instead of local
choices: a free-text group id (the remote's), _typeFilter and patient."""

from __future__ import annotations

from typing import Any

from django import forms

from bulkops.fhir.params import GROUP, PATIENT
from bulkops.fhir.references import is_valid_id
from bulkops.signing_keys import (
    ALGORITHMS,
    MAX_UPLOAD_BYTES,
    PrivateKeyError,
    generate_private_jwk,
    parse_private_jwks,
)
from exports.forms import LaunchForm
from remotes.models import RemoteServer
from remotes.self_server import SELF_NAME


def optional_fhir_id(value: str) -> str:
    value = value.strip()
    if value and not is_valid_id(value):
        raise forms.ValidationError(f"{value!r} is not a FHIR id (A-Z a-z 0-9 - ., ≤ 64).")
    return value


# Names whose /remotes/<name>/ is a console page of its own (remotes/urls.py, check_urls.py).
RESERVED_NAMES = frozenset({"new", "self-check"})


class RemoteServerForm(forms.ModelForm):
    base_url = forms.URLField(label="FHIR base URL", max_length=500, assume_scheme="https")
    token_url = forms.URLField(
        label="Token endpoint",
        max_length=500,
        required=False,
        assume_scheme="https",
        help_text="Leave empty to discover it from the server.",
    )

    class Meta:
        model = RemoteServer
        fields = [
            "name",
            "base_url",
            "token_url",
            "client_id",
            "scopes",
            "default_group_id",
            "verify_tls",
            "delete_remote_job",
        ]
        help_texts = {
            "client_id": "Leave empty until that server has registered our public key set "
            "(shown once this server is saved); add the client_id it gives us then.",
        }
        labels = {
            "client_id": "Our client_id there",
            "default_group_id": "Default group",
            "verify_tls": "Verify TLS certificates",
            "delete_remote_job": "DELETE the remote job when done",
        }
        widgets = {"scopes": forms.TextInput()}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if name in RESERVED_NAMES:
            raise forms.ValidationError(f"'{name}' is reserved for the console's own page.")
        # "Check this bulkops" finds its server by this name: no other may take it.
        if name == SELF_NAME and not self.instance.local_client_id:
            raise forms.ValidationError(f"'{name}' is reserved for Check this bulkops.")
        return name

    def clean_default_group_id(self) -> str:
        return optional_fhir_id(self.cleaned_data["default_group_id"])


KEY_SOURCES = [
    ("ES384", "Generate an ES384 key (P-384)"),
    ("RS384", "Generate an RS384 key (RSA 3072)"),
    ("upload", "Upload a private JWK Set"),
]


class KeyForm(forms.Form):
    """Our private key for the server: generated here, or uploaded once. Either way
    it is stored encrypted and never shown again."""

    source = forms.ChoiceField(
        label="Private key", choices=KEY_SOURCES, initial="ES384", widget=forms.RadioSelect
    )
    private_jwks = forms.CharField(
        label="Private JWK Set",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text="Only with 'Upload': one private key (RS384 or ES384).",
    )
    private_jwks_file = forms.FileField(label="…or as a file", required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        source = data.get("source")
        if source in ALGORITHMS:
            data["private_jwk"] = generate_private_jwk(source)
            return data
        upload = data.get("private_jwks_file")
        text = data.get("private_jwks") or ""
        if upload is not None:
            text = upload.read(MAX_UPLOAD_BYTES + 1).decode("utf-8", "replace")
        if not text.strip():
            self.add_error("private_jwks", "Paste or choose the private JWK Set to upload.")
            return data
        try:
            data["private_jwk"] = parse_private_jwks(text)
        except PrivateKeyError as error:
            self.add_error("private_jwks", str(error))
        return data


class RemoteLaunchForm(LaunchForm):
    """LaunchForm for a remote: no local client; the group is the remote's id. Pulled
    files go to the default storage (remotes.runner), so there is no storage to choose."""

    storage = None
    group_id = forms.CharField(label="Group", required=False, max_length=64)  # type: ignore[assignment]
    patient = forms.CharField(
        required=False,
        help_text="Patient ids (space- or comma-separated); Patient and Group exports only.",
    )

    def __init__(self, *args: Any, server: RemoteServer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["client"]
        self.fields["group_id"].initial = server.default_group_id
        self.server = server

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.server.client_id:
            raise forms.ValidationError(
                f"{self.server.name} has no client_id for us yet: register our public key "
                "set there, then add the client_id it gives us (Edit)."
            )
        return data

    def filter_problems(self) -> list[str]:
        """None here: `_typeFilter` lines go to the remote as written, and the remote
        decides what it supports (it may evaluate what bulkops' own engine refuses)."""
        return []

    def clean_group_id(self) -> str:
        return optional_fhir_id(self.cleaned_data["group_id"])

    def clean_patient(self) -> list[str]:
        ids = self.cleaned_data["patient"].replace(",", " ").split()
        if bad := [i for i in ids if not is_valid_id(i)]:
            raise forms.ValidationError(f"Not FHIR ids: {', '.join(bad)}.")
        if ids and self.data.get("level") not in (GROUP, PATIENT):
            raise forms.ValidationError("patient applies to Patient and Group exports only.")
        return ids

    def pairs(self) -> list[tuple[str, str]]:
        patients = [("patient", f"Patient/{pid}") for pid in self.cleaned_data["patient"]]
        return [*super().pairs(), *patients]
