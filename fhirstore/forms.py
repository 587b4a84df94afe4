"""Console forms of the Data page: a Group of stored patients, and files to load."""

from __future__ import annotations

from typing import Any

from django import forms

from bulkops.fhir.references import is_valid_id


def checked_id(text: str) -> str:
    """An optional Group id as typed: empty, or a FHIR id."""
    value = text.strip()
    if value and not is_valid_id(value):
        raise forms.ValidationError(f"{value!r} is not a FHIR id (A-Z a-z 0-9 - ., ≤ 64).")
    return value


class GroupForm(forms.Form):
    group_id = forms.CharField(
        label="Group id",
        required=False,
        max_length=64,
        help_text="Leave empty for a new id; an existing id replaces that Group.",
    )
    name = forms.CharField(max_length=200)
    patients = forms.CharField(
        label="Patient ids",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Space-, comma- or line-separated ids of existing patients; "
        "patients ticked in the search below are added.",
    )

    def clean_group_id(self) -> str:
        return checked_id(self.cleaned_data["group_id"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "patients" in data and not self.patient_ids():
            self.add_error("patients", "Name at least one patient, or tick one in the search.")
        return data

    def patient_ids(self) -> list[str]:
        typed = self.cleaned_data.get("patients", "").replace(",", " ").split()
        return list(dict.fromkeys([*typed, *self.data.getlist("add_patients")]))


class CohortForm(forms.Form):
    """A Bulk Cohort Group: its members are the patients matching every filter."""

    cohort_id = forms.CharField(
        label="Cohort id",
        required=False,
        max_length=64,
        help_text="Leave empty for a new id; an existing id replaces that Group.",
    )
    cohort_name = forms.CharField(label="Name", max_length=200)
    filters = forms.CharField(
        label="Member filters",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One FHIR search a line, all of which a patient must meet: "
        "Patient?gender=female, Condition?code=http://snomed.info/sct|44054006.",
    )

    def clean_cohort_id(self) -> str:
        return checked_id(self.cleaned_data["cohort_id"])

    def filter_lines(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["filters"].splitlines() if line.strip()]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (Django's documented recipe)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> Any:
        if isinstance(data, list | tuple) and data:
            return [super(MultipleFileField, self).clean(item, initial) for item in data]
        return [super().clean(data, initial)]


class UploadForm(forms.Form):
    files = MultipleFileField(
        label="Bundles or NDJSON",
        help_text=".json (a Bundle or one resource), .ndjson or .ndjson.gz; "
        "each file loads whole or not at all.",
    )

    def __init__(self, *args: Any, refusal: str = "", **kwargs: Any) -> None:
        """`refusal`: why the request's files were skipped (fhirstore/uploads.py)."""
        super().__init__(*args, **kwargs)
        self.refusal = refusal
        if refusal:
            self.fields["files"].required = False

    def clean(self) -> dict[str, Any]:
        if self.refusal:
            self.add_error("files", self.refusal)
        return super().clean()
