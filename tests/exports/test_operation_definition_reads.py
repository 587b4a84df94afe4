"""GET /fhir/OperationDefinition[/{id}]: bulkops' own $export definitions, public like
/fhir/metadata, and reachable from the CapabilityStatement that points to them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from django.test import Client

from accounts.services import register_client
from fhirstore.writes import put_resource
from tests.smart import get_token

pytestmark = pytest.mark.django_db
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
IDS = ("bulkops-export", "bulkops-patient-export", "bulkops-group-export")


@pytest.fixture
def anonymous() -> Client:
    return Client()


def outcome(response) -> dict:
    assert response["Content-Type"].startswith("application/fhir+json")
    data = json.loads(response.content)
    assert data["resourceType"] == "OperationOutcome"
    return data["issue"][0]


@pytest.mark.parametrize("definition_id", IDS)
def test_each_definition_is_read_without_a_token_and_names_its_own_url(
    anonymous, settings, definition_id
):
    settings.BULKOPS_BASE_URL = ""
    response = anonymous.get(f"/fhir/OperationDefinition/{definition_id}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json; charset=utf-8"
    resource = json.loads(response.content)
    assert (resource["resourceType"], resource["id"]) == ("OperationDefinition", definition_id)
    assert resource["url"] == f"http://testserver/fhir/OperationDefinition/{definition_id}"
    assert resource["base"].startswith("http://hl7.org/fhir/uv/bulkdata/OperationDefinition/")


def test_the_url_uses_the_configured_base_url(anonymous, settings):
    settings.BULKOPS_BASE_URL = "https://bulk.example.org"
    resource = json.loads(anonymous.get("/fhir/OperationDefinition/bulkops-export").content)
    assert resource["url"] == "https://bulk.example.org/fhir/OperationDefinition/bulkops-export"


def test_an_unknown_definition_is_a_404_outcome_naming_the_known_ones(anonymous):
    response = anonymous.get("/fhir/OperationDefinition/export")
    assert response.status_code == 404
    issue = outcome(response)
    assert issue["code"] == "not-found"
    assert all(definition_id in issue["diagnostics"] for definition_id in IDS)


def test_format_json_is_accepted_and_xml_refused_as_for_metadata(anonymous):
    path = "/fhir/OperationDefinition/bulkops-group-export"
    assert anonymous.get(path, {"_format": "application/fhir+json"}).status_code == 200
    assert anonymous.get("/fhir/OperationDefinition", {"_format": "json"}).status_code == 200
    for url in (path, "/fhir/OperationDefinition"):
        response = anonymous.get(url, {"_format": "xml"})
        assert response.status_code == 406 and outcome(response)["code"] == "not-supported"


def test_a_stored_operation_definition_is_not_served_by_the_public_route(anonymous, ec_key):
    """The public route serves bulkops' definitions only: the store behind it, which
    needs a token, stays out of reach (a stored one is exported, not read here)."""
    put_resource(
        resource_type="OperationDefinition",
        resource_id="stored",
        body={"resourceType": "OperationDefinition", "id": "stored", "name": "Private"},
        now=NOW,
    )
    backend = register_client(name="reader", jwks=ec_key.jwks(), scopes="system/*.read")
    token = get_token(ec_key, backend.client_id, "system/*.read")
    with_token = Client(headers={"Authorization": f"Bearer {token}"})
    for client in (anonymous, with_token):
        response = client.get("/fhir/OperationDefinition/stored")
        assert response.status_code == 404 and b"Private" not in response.content
        listed = json.loads(client.get("/fhir/OperationDefinition").content)
        assert [entry["resource"]["id"] for entry in listed["entry"]] == list(IDS)


def test_search_lists_the_three_definitions_as_a_searchset(anonymous):
    bundle = json.loads(anonymous.get("/fhir/OperationDefinition").content)
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 3)
    for entry in bundle["entry"]:
        assert entry["fullUrl"] == entry["resource"]["url"]
        read = json.loads(anonymous.get(entry["fullUrl"]).content)
        assert read == entry["resource"]


def test_search_with_a_parameter_is_refused_rather_than_ignored(anonymous):
    response = anonymous.get("/fhir/OperationDefinition", {"url": "x", "_count": "1"})
    assert response.status_code == 400
    assert outcome(response)["diagnostics"] == (
        "OperationDefinition search takes no parameters; got _count, url."
    )


def test_the_capability_statement_points_each_operation_to_a_served_definition(anonymous):
    """The operations keep the Bulk Data canonicals test kits check; their documentation
    names bulkops' definition, which is served and is based on that canonical."""
    rest = json.loads(anonymous.get("/fhir/metadata").content)["rest"][0]
    operations = [*rest["operation"]]
    operations += [op for r in rest["resource"] for op in r.get("operation", [])]
    # export-v4 (Bulk Data 4 beside 2.0.0) names the IG's 4.0.0 definitions.
    operations = [op for op in operations if op["name"] == "export"]
    assert len(operations) == 3
    for operation in operations:
        found = re.search(
            r"http://testserver/fhir/OperationDefinition/[\w-]+", operation["documentation"]
        )
        assert found, operation
        url = found.group()
        resource = json.loads(anonymous.get(url).content)
        assert resource["url"] == url
        assert resource["base"] == operation["definition"]
        names = [parameter["name"] for parameter in resource["parameter"]]
        assert f"bulkops accepts {', '.join(names)}." in operation["documentation"]
