from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import resolve, reverse

from accounts.services import register_client
from fhirstore.groups import upsert_group
from fhirstore.writes import delete_resource, put_resource
from tests.smart import get_token

pytestmark = pytest.mark.django_db
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def reader(key, scopes: str = "system/*.read", groups: tuple[str, ...] = ()) -> Client:
    """A backend client's HTTP session with a real token for `scopes`."""
    backend = register_client(
        name=f"reader {scopes}", jwks=key.jwks(), scopes=scopes, group_ids=list(groups)
    )
    token = get_token(key, backend.client_id, scopes)
    return Client(headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def client(ec_key) -> Client:
    """Every read below is made with a system/*.read token unless it says otherwise."""
    return reader(ec_key)


@pytest.fixture
def patient():
    return put_resource(
        resource_type="Patient",
        resource_id="p1",
        body={"resourceType": "Patient", "id": "p1", "name": [{"family": "Zoë"}]},
        now=NOW,
    )


def outcome(response) -> dict:
    assert response["Content-Type"].startswith("application/fhir+json")
    data = json.loads(response.content)
    assert data["resourceType"] == "OperationOutcome"
    return data["issue"][0]


def test_read_returns_the_stored_body_byte_for_byte(client: Client, patient):
    response = client.get("/fhir/Patient/p1")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json; charset=utf-8"
    assert response.content == patient.body.encode()
    assert response["ETag"] == 'W/"1"'
    assert json.loads(response.content)["meta"]["lastUpdated"] == "2024-05-01T12:00:00.000Z"


def test_read_accepts_format_json_and_refuses_xml(client: Client, patient):
    assert client.get("/fhir/Patient/p1", {"_format": "json"}).status_code == 200
    assert client.get("/fhir/Patient/p1", {"_format": "application/fhir+json"}).status_code == 200
    response = client.get("/fhir/Patient/p1", {"_format": "xml"})
    assert response.status_code == 406 and outcome(response)["code"] == "not-supported"


def test_unknown_type_and_unknown_id_are_404_outcomes(client: Client, patient):
    response = client.get("/fhir/Patientt/p1")
    assert (
        response.status_code == 404 and "unknown resource type" in outcome(response)["diagnostics"]
    )
    response = client.get("/fhir/Patient/nobody")
    assert response.status_code == 404 and outcome(response)["code"] == "not-found"


def test_deleted_resource_is_410_gone(client: Client, patient):
    delete_resource(resource_type="Patient", resource_id="p1", now=NOW)
    response = client.get("/fhir/Patient/p1")
    assert response.status_code == 410 and outcome(response)["code"] == "deleted"


def test_export_urls_are_not_taken_for_reads():
    assert resolve("/fhir/$export").url_name == "export"
    assert resolve("/fhir/Patient/$export").url_name == "patient-export"
    assert resolve("/fhir/Group/g1/$export").url_name == "group-export"


def test_metadata_is_a_bulk_data_capability_statement(client: Client, patient, settings):
    settings.BULKOPS_BASE_URL = ""
    response = client.get(reverse("fhir:metadata"))
    statement = json.loads(response.content)
    assert response.status_code == 200
    assert statement["fhirVersion"] == "4.0.1"
    assert (
        "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data" in statement["instantiates"]
    )
    assert statement["implementationGuide"] == [
        "http://hl7.org/fhir/uv/bulkdata/ImplementationGuide/hl7.fhir.uv.bulkdata"
    ]
    rest = statement["rest"][0]
    assert rest["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    oauth = rest["security"]["extension"][0]
    assert oauth["extension"] == [{"url": "token", "valueUri": "http://testserver/auth/token"}]
    resources = {r["type"]: [i["code"] for i in r["interaction"]] for r in rest["resource"]}
    assert resources == {
        "Group": ["read", "search-type", "create"],
        "OperationDefinition": ["read", "search-type"],
        "Patient": ["read", "search-type"],
    }
    definitions = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
    operations = {
        r["type"]: [(o["name"], o["definition"]) for o in r["operation"]]
        for r in rest["resource"]
        if "operation" in r
    }
    operations["*"] = [(o["name"], o["definition"]) for o in rest["operation"]]
    assert operations == {
        "*": [("export", f"{definitions}/export"), ("export-v4", f"{definitions}/export|4.0.0")],
        "Group": [
            ("export", f"{definitions}/group-export"),
            ("export-v4", f"{definitions}/group-export|4.0.0"),
        ],
        "Patient": [
            ("export", f"{definitions}/patient-export"),
            ("export-v4", f"{definitions}/patient-export|4.0.0"),
        ],
    }
    documentation = rest["operation"][0]["documentation"]
    assert "_typeFilter" in documentation and "_until" in documentation
    assert "http://testserver/fhir/OperationDefinition/bulkops-export" in documentation


def test_metadata_lists_the_parameters_search_and_type_filters_may_use(client: Client, patient):
    rest = json.loads(client.get(reverse("fhir:metadata")).content)["rest"][0]
    params = {r["type"]: {p["name"]: p for p in r.get("searchParam", [])} for r in rest["resource"]}
    birthdate = params["Patient"]["birthdate"]
    assert birthdate["type"] == "date"
    assert birthdate["definition"] == "http://hl7.org/fhir/SearchParameter/individual-birthdate"
    assert birthdate["documentation"].startswith("In search and in $export _typeFilter")
    assert "_lastUpdated" in params["Patient"]  # what incremental clients look for
    patient_entry = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert "_count (at most 500)" in patient_entry["documentation"]
    assert ":text" in params["Patient"]["gender"]["documentation"]
    assert {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"} <= set(
        params["Group"]
    )
    assert "_text" not in params["Patient"]  # no expression to evaluate


def test_metadata_token_url_uses_the_configured_base_url(client: Client, settings):
    settings.BULKOPS_BASE_URL = "https://bulk.example.org"
    statement = json.loads(client.get("/fhir/metadata").content)
    token = statement["rest"][0]["security"]["extension"][0]["extension"][0]["valueUri"]
    assert token == "https://bulk.example.org/auth/token"


def test_group_list_pages_with_count_and_group_read_returns_one(client: Client, patient):
    groups = [
        upsert_group(group_id=f"g{n}", name=f"Cohort {n}", patient_ids=["p1"], actor="ada")
        for n in range(3)
    ]
    first = json.loads(client.get("/fhir/Group", {"_count": 2}).content)
    assert first["type"] == "searchset" and first["total"] == 3
    assert [e["resource"]["id"] for e in first["entry"]] == ["g0", "g1"]
    assert first["entry"][0]["fullUrl"] == "http://testserver/fhir/Group/g0"
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = json.loads(client.get(next_url).content)
    assert [e["resource"]["id"] for e in second["entry"]] == ["g2"]
    assert all(link["relation"] != "next" for link in second["link"])
    response = client.get(reverse("fhir:group-read", args=["g1"]))
    assert response.content == groups[1].body.encode()


def test_group_list_rejects_a_bad_count(client: Client):
    response = client.get("/fhir/Group", {"_count": "lots"})
    assert response.status_code == 400 and "_count" in outcome(response)["diagnostics"]


def test_reads_need_a_bearer_token_but_metadata_does_not(patient):
    anonymous = Client()
    for path in ("/fhir/Patient/p1", "/fhir/Group", "/fhir/Group/g1"):
        response = anonymous.get(path)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert outcome(response)["code"] == "login"
    assert anonymous.get("/fhir/metadata").status_code == 200


def test_read_outside_the_token_scopes_is_403_naming_the_scope(ec_key, patient):
    response = reader(ec_key, "system/Observation.read").get("/fhir/Patient/p1")
    assert response.status_code == 403
    assert "system/Patient.read" in outcome(response)["diagnostics"]


def test_a_group_bound_client_sees_only_its_groups(ec_key, patient):
    upsert_group(group_id="mine", name="Mine", patient_ids=["p1"], actor="ada")
    upsert_group(group_id="theirs", name="Theirs", patient_ids=["p1"], actor="ada")
    bound = reader(ec_key, groups=("mine",))
    listed = json.loads(bound.get("/fhir/Group").content)
    assert [entry["resource"]["id"] for entry in listed["entry"]] == ["mine"]
    assert listed["total"] == 1
    assert bound.get("/fhir/Group/mine").status_code == 200
    assert bound.get("/fhir/Group/theirs").status_code == 404
