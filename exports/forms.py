"""Console forms for exports. They collect what a kick-off URL would carry; the rules
(parameter syntax, scopes, group binding) stay in `exports.kickoff.plan_export`."""

from __future__ import annotations

from django import forms
from django.utils import timezone

from accounts.models import BackendClient
from bulkops.fhir.outcome import FhirError
from bulkops.fhir.params import GROUP, PATIENT, SYSTEM, V2, V4, listed_pairs
from bulkops.fhir.type_filters import parse_filters
from exports.models import ExportJob
from exports.storage import DEFAULT_STORAGE, storage_names
from fhirstore.reads import group_names

LEVEL_CHOICES = [(SYSTEM, "System"), (PATIENT, "Patient"), (GROUP, "Group")]
VERSION_CHOICES = [(V2, "2.0.0 ($export)"), (V4, "4.0.0 ballot ($export-v4)")]
# The kick-off parameters only the 4.0.0 ballot has, by form field.
V4_OPTIONS = {
    "organize_by_patient": ("organizeOutputBy", "Patient"),
    "allow_partial_manifests": ("allowPartialManifests", "true"),
}
OUTPUT_FORMATS = ["application/fhir+ndjson", "application/ndjson", "ndjson"]


class ClientChoiceField(forms.ModelChoiceField):
    """Clients by name (the client_id is the submitted value, not the label)."""

    def label_from_instance(self, obj: BackendClient) -> str:  # type: ignore[override]
        return obj.name


class LaunchForm(forms.Form):
    client = ClientChoiceField(
        queryset=BackendClient.objects.filter(status=BackendClient.Status.ACTIVE),
        to_field_name="client_id",
        required=False,
        empty_label="The console itself (every type, no group binding)",
        help_text="The export runs with this client's registered scopes and group binding; "
        "the console's own exports are reachable only here.",
    )
    # System needs nothing more, so the form can be launched (and previewed) as it opens.
    level = forms.ChoiceField(choices=LEVEL_CHOICES, initial=SYSTEM)
    group_id = forms.ChoiceField(label="Group", required=False)
    types = forms.CharField(
        label="_type",
        required=False,
        help_text="Comma-separated resource types; empty exports every type the level allows.",
    )
    since = forms.CharField(
        label="_since", required=False, help_text="FHIR instant, e.g. 2024-01-01T00:00:00Z"
    )
    until = forms.CharField(
        label="_until",
        required=False,
        help_text="FHIR instant: only resources last updated at or before it",
    )
    elements = forms.CharField(
        label="_elements", required=False, help_text="e.g. id,meta,Patient.name"
    )
    type_filters = forms.CharField(
        label="_typeFilter",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="One search per line, e.g. Observation?category=laboratory; "
        "filters on one type are OR-ed, types without one are exported whole.",
    )
    output_format = forms.ChoiceField(
        label="_outputFormat", choices=[(f, f) for f in OUTPUT_FORMATS], initial=OUTPUT_FORMATS[0]
    )
    storage = forms.ChoiceField(
        label="Output storage",
        required=False,
        initial=DEFAULT_STORAGE,
        error_messages={"invalid_choice": "No output storage is called %(value)s."},
        help_text="Where the files go: the default storage, or one of BULKOPS_OUTPUT_STORAGES.",
    )
    bulk_version = forms.ChoiceField(
        label="Bulk Data version", choices=VERSION_CHOICES, initial=V2, required=False
    )
    organize_by_patient = forms.BooleanField(
        label="organizeOutputBy=Patient",
        required=False,
        help_text="4.0.0 only: files of patient blocks, each led by a header line naming "
        "its Patient.",
    )
    allow_partial_manifests = forms.BooleanField(
        label="allowPartialManifests",
        required=False,
        help_text="4.0.0 only: finished files are listed while the export runs.",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["group_id"].choices = [("", "—")] + [
            (group_id, group_label(group_id, name)) for group_id, name in group_names().items()
        ]
        if "storage" in self.fields:
            self.fields["storage"].choices = [(name, name) for name in storage_names()]

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("level") == GROUP and not data.get("group_id"):
            self.add_error("group_id", "Choose the Group to export.")
        for problem in self.filter_problems():
            self.add_error("type_filters", problem)
        data["bulk_version"] = data.get("bulk_version") or V2
        for name, (parameter, _) in V4_OPTIONS.items():
            if data.get(name) and data["bulk_version"] != V4:
                self.add_error(name, f"{parameter} is a Bulk Data 4.0.0 parameter: choose 4.0.0.")
        return data

    def clean_storage(self) -> str:
        """Left out (a form posted before storages could be chosen): the default."""
        return self.cleaned_data["storage"] or DEFAULT_STORAGE

    def filter_lines(self) -> list[str]:
        return [line.strip() for line in self.data.get("type_filters", "").splitlines()]

    def requested_types(self) -> list[str] | None:
        """The `_type` names as typed (None: every type), for checking filters against."""
        names = [name.strip() for name in self.data.get("types", "").split(",")]
        return [name for name in names if name] or None

    def filter_problems(self) -> list[str]:
        """Why each filter cannot be applied: the console launches with strict handling,
        so any of these refuses the export, in the words the FHIR kick-off uses."""
        try:
            parsed = parse_filters(
                self.filter_lines(), now=timezone.now(), types=self.requested_types()
            )
        except FhirError as error:
            return [error.diagnostics]
        return [item.problem for item in parsed if item.problem]

    def pairs(self) -> list[tuple[str, str]]:
        """The kick-off parameters, as the API would read them from a query string."""
        data = self.cleaned_data
        names = {"types": "_type", "since": "_since", "until": "_until", "elements": "_elements"}
        pairs = [
            (param, data[field].strip()) for field, param in names.items() if data[field].strip()
        ]
        if data["bulk_version"] == V4:  # one value per parameter (v4 digest B2)
            pairs = [
                pair
                for param, text in pairs
                for pair in (
                    listed_pairs(param, _names(text), V4)
                    if param in ("_type", "_elements")
                    else [(param, text)]
                )
            ]
            pairs += [pair for name, pair in V4_OPTIONS.items() if data.get(name)]
        pairs += [("_typeFilter", line) for line in self.filter_lines() if line]
        return [*pairs, ("_outputFormat", data["output_format"])]

    def group(self) -> str:
        return self.cleaned_data["group_id"] if self.cleaned_data["level"] == GROUP else ""


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def bulk_data_label(version: str, organized_by: str = "", partial: bool = False) -> str:
    """How a job page names the Bulk Data version an export speaks, and its v4 options."""
    extras = [f"organised by {organized_by}"] if organized_by else []
    extras += ["partial manifests"] if partial else []
    return ", ".join([dict(VERSION_CHOICES).get(version, version), *extras])


def group_label(group_id: str, name: str) -> str:
    """A Group as a dropdown names it: its name first, the id after."""
    return f"{name} ({group_id})" if name else group_id


def rerun_pairs(job: ExportJob) -> list[tuple[str, str]]:
    """A finished job's stored parameters as kick-off pairs, to launch it again."""
    stored, version = job.parameters, job.bulk_version
    pairs: list[tuple[str, str]] = []
    if stored.get("_type") is not None:
        pairs += listed_pairs("_type", stored["_type"], version) or [("_type", "")]
    for name in ("_since", "_until"):
        if stored.get(name):
            pairs.append((name, stored[name]))
    pairs += listed_pairs("_elements", stored.get("_elements") or [], version)
    pairs.extend(("_typeFilter", text) for text in stored.get("_typeFilter", []))
    pairs.extend(("patient", ref) for ref in stored.get("patient", []))
    if stored.get("organizeOutputBy"):
        pairs.append(("organizeOutputBy", stored["organizeOutputBy"]))
    if stored.get("allowPartialManifests"):
        pairs.append(("allowPartialManifests", "true"))
    return pairs


class JobFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False)
    client = ClientChoiceField(
        queryset=BackendClient.objects.all(), to_field_name="client_id", required=False
    )
    status = forms.ChoiceField(choices=[("", "any")] + ExportJob.Status.choices, required=False)
    level = forms.ChoiceField(choices=[("", "any"), *LEVEL_CHOICES], required=False)
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
