"""`_typeFilter` and `_until` at kick-off, GET and POST, strict and lenient: what the
client reads (status, OperationOutcome) and what the job keeps. No worker runs here."""

from __future__ import annotations

import pytest

from exports.models import ExportJob

pytestmark = pytest.mark.django_db

LENIENT = "respond-async, handling=lenient"
# Each filter bulkops refuses, and the part its refusal names.
REFUSALS = [
    ("Observation?_include=Observation:subject", "_include is a result parameter"),
    ("Observation?_revinclude=Provenance:target", "_revinclude is a result parameter"),
    ("Observation?_sort=date", "_sort is a result parameter"),
    ("Observation?_count=5", "_count is a result parameter"),
    ("Observation?_elements=id", "_elements is a result parameter"),
    ("Observation?_summary=count", "_summary is a result parameter"),
    ("Observation?subject.gender=male", "subject.gender is a chained parameter"),
    ("Observation?code-value-quantity=8867-4$gt60", "code-value-quantity is a composite"),
    ("Observation?wavelength=red", "Observation has no search parameter 'wavelength'"),
    ("Observation?code:below=8867", "the modifier :below is not supported on code"),
]


def diagnostics(response) -> list[str]:
    return [issue["diagnostics"] for issue in response.json()["issue"]]


def test_get_kickoff_keeps_every_filter_as_bulkops_reads_it(client_a, store):
    response = client_a.kick_off(
        "/fhir/$export?_typeFilter=Observation%3Fcode%3Dhttp%3A%2F%2Floinc.org%7C8867-4"
        "%2CCondition%3Fsubject%3Dhttp%3A%2F%2Ftestserver%2Ffhir%2FPatient%2Fp1"
        "&_typeFilter=Observation%3Fstatus%3Dfinal"
    )
    assert response.status_code == 202, response.content
    job = ExportJob.objects.get()
    assert job.parameters["_typeFilter"] == [
        "Observation?code=http://loinc.org|8867-4",
        "Condition?subject=Patient/p1",
        "Observation?status=final",
    ]
    assert job.warnings == []


def test_post_kickoff_takes_filters_as_value_strings(client_a, store):
    response = client_a.post_kick_off(
        "/fhir/Group/g1/$export",
        [
            {"name": "_typeFilter", "valueString": "Observation?code=8867-4,1234-5"},
            {"name": "_typeFilter", "valueString": "Condition?subject:Patient=p2"},
            {"name": "_until", "valueInstant": "2030-01-01T00:00:00Z"},
        ],
    )
    assert response.status_code == 202, response.content
    job = ExportJob.objects.get()
    assert job.parameters["_typeFilter"] == [
        "Observation?code=8867-4,1234-5",
        "Condition?subject:Patient=Patient/p2",
    ]
    assert job.parameters["_until"] == "2030-01-01T00:00:00+00:00"


@pytest.mark.parametrize(("value", "part"), REFUSALS)
def test_strict_refuses_with_an_outcome_naming_the_filter_and_changes_nothing(
    client_a, store, value, part
):
    response = client_a.kick_off(data={"_typeFilter": value})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/fhir+json")
    issue = response.json()["issue"][0]
    assert issue["code"] == "not-supported"
    assert issue["diagnostics"].startswith(f"The _typeFilter {value!r} cannot be applied: {part}")
    assert not ExportJob.objects.exists()


@pytest.mark.parametrize(("value", "part"), REFUSALS)
def test_lenient_drops_the_filter_and_says_so_in_the_job_and_the_outcome(
    client_a, store, value, part
):
    response = client_a.post_kick_off(
        "/fhir/$export",
        [
            {"name": "_typeFilter", "valueString": value},
            {"name": "_typeFilter", "valueString": "Condition?code=1"},
        ],
        prefer=LENIENT,
    )
    assert response.status_code == 202, response.content
    job = ExportJob.objects.get()
    assert job.parameters["_typeFilter"] == ["Condition?code=1"]
    sentence = f"The _typeFilter {value!r} cannot be applied: {part}"
    assert len(job.warnings) == 1 and job.warnings[0].startswith(sentence)
    assert job.warnings[0].endswith("It was ignored (Prefer: handling=lenient).")
    assert job.warnings[0] in diagnostics(response)


def test_a_filter_outside_type_is_refused_strict_and_dropped_lenient(client_a, store):
    query = {"_type": "Patient", "_typeFilter": "Observation?status=final"}
    assert client_a.kick_off(data=query).status_code == 400
    response = client_a.kick_off(data=query, prefer=LENIENT)
    assert response.status_code == 202
    assert "_type does not ask for Observation" in ExportJob.objects.get().warnings[0]


def test_a_filter_on_a_type_the_token_cannot_read_is_reported_like_a_dropped_type(
    make_fhir_client, jwk_a, store
):
    limited = make_fhir_client(jwk_a, name="limited", scopes="system/Patient.read")
    response = limited.kick_off(
        data={"_typeFilter": "Observation?status=final"}, scope="system/Patient.read"
    )
    assert response.status_code == 202, response.content
    job = ExportJob.objects.get()
    assert job.types == ["Patient"]
    assert job.warnings == [
        "Observation was requested but this client's token only grants system/Patient.read; "
        "it was left out of this export."
    ]
    assert job.warnings[0] in diagnostics(response)


def test_a_filter_on_a_type_outside_the_compartment_is_reported_at_patient_level(client_a, store):
    response = client_a.kick_off(
        "/fhir/Patient/$export", data={"_typeFilter": "ValueSet?url=http://example.org/vs"}
    )
    assert response.status_code == 202
    assert ExportJob.objects.get().warnings == [
        "ValueSet was requested but is not in the Patient compartment, so this "
        "Patient-level export left it out."
    ]


def test_until_must_be_after_since(client_a, store):
    response = client_a.kick_off(
        data={"_since": "2024-02-01T00:00:00Z", "_until": "2024-01-01T00:00:00Z"}
    )
    assert response.status_code == 400
    assert "_until must be later than _since" in diagnostics(response)[0]
    assert not ExportJob.objects.exists()


def test_a_nul_character_in_a_filter_never_reaches_the_database(client_a, store):
    """PostgreSQL refuses NUL in text and jsonb: a filter holding one would fail the job
    row's insert (a 500) or a worker's query. It is refused like any bad filter, and
    the lenient warning quotes it escaped."""
    strict = client_a.kick_off("/fhir/$export?_typeFilter=Observation%3Fcode%3Da%2500b")
    assert strict.status_code == 400
    assert "contains a NUL character" in diagnostics(strict)[0]
    assert not ExportJob.objects.exists()
    lenient = client_a.kick_off(
        "/fhir/$export?_typeFilter=Observation%3Fcode%3Da%00b", prefer=LENIENT
    )
    assert lenient.status_code == 202
    job = ExportJob.objects.get()
    assert job.parameters["_typeFilter"] == []
    assert "\x00" not in job.warnings[0] and "contains a NUL character" in job.warnings[0]


@pytest.mark.parametrize(
    "value",
    [
        "Observation?value-quantity=1e99999999999",
        "RiskAssessment?probability=ap-1e-99999999",
        "Observation?date=ge9999-12-31T23:59:59-14:00",
        "Observation?_lastUpdated=le0001-01-01T00:00:00+14:00",
    ],
)
def test_numbers_and_dates_beyond_any_range_are_a_400_not_a_crash(client_a, store, value):
    response = client_a.kick_off(data={"_typeFilter": value})
    assert response.status_code == 400
    assert diagnostics(response)[0].startswith(f"The _typeFilter {value!r} cannot be applied")
