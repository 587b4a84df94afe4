from __future__ import annotations

import pytest

from bulkops.fhir.bundle import BundleError, plan_bundle
from bulkops.fhir.references import ConditionalReference, UnresolvedReferences

NPI = "http://hl7.org/fhir/sid/us-npi"


def no_store(reference: ConditionalReference) -> list[str]:
    return []


def entry(resource: dict, method: str = "POST", **request: str) -> dict:
    return {
        "fullUrl": f"urn:uuid:{resource['id']}",
        "resource": resource,
        "request": {"method": method, "url": resource["resourceType"], **request},
    }


def test_urn_uuid_and_conditional_references_become_type_slash_id():
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry({"resourceType": "Patient", "id": "p1"}),
            entry(
                {
                    "resourceType": "Encounter",
                    "id": "e1",
                    "subject": {"reference": "urn:uuid:p1"},
                    "participant": [
                        {"individual": {"reference": f"Practitioner?identifier={NPI}|42"}}
                    ],
                }
            ),
        ],
    }
    plan = plan_bundle(bundle, lambda ref: ["dr-42"] if ref.value == "42" else [])
    encounter = plan.writes[1].body
    assert encounter["subject"] == {"reference": "Patient/p1"}
    assert encounter["participant"][0]["individual"] == {"reference": "Practitioner/dr-42"}


def test_post_if_none_exist_matching_a_stored_resource_is_skipped_and_referenced():
    practitioner = {
        "resourceType": "Practitioner",
        "id": "new",
        "identifier": [{"system": NPI, "value": "1"}],
    }
    role = {
        "resourceType": "PractitionerRole",
        "id": "r",
        "practitioner": {"reference": "urn:uuid:new"},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [entry(practitioner, ifNoneExist=f"identifier={NPI}|1"), entry(role)],
    }
    plan = plan_bundle(bundle, lambda ref: ["stored"])
    assert [w.key.reference() for w in plan.writes] == ["PractitionerRole/r"]
    assert plan.writes[0].body["practitioner"] == {"reference": "Practitioner/stored"}
    assert [key.reference() for key in plan.skipped] == ["Practitioner/stored"]


def test_delete_entries_become_deletes():
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": "Observation/o1"}}],
    }
    (write,) = plan_bundle(bundle, no_store).writes
    assert write.key.reference() == "Observation/o1" and write.body is None


@pytest.mark.parametrize(
    ("entry_resource", "reason"),
    [
        (
            {"resourceType": "Observation", "id": "o", "subject": {"reference": "urn:uuid:gone"}},
            "urn:uuid:gone",
        ),
        ({"resourceType": "Observatio", "id": "o"}, "unknown resource type"),
        ({"id": "o"}, "no resourceType"),
    ],
)
def test_a_broken_entry_fails_the_bundle_naming_the_entry(entry_resource, reason):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry({"resourceType": "Patient", "id": "p"}),
            {"resource": entry_resource, "request": {"method": "PUT", "url": "Observation/o"}},
        ],
    }
    with pytest.raises(BundleError) as raised:
        plan_bundle(bundle, no_store)
    assert raised.value.entry == 1
    assert reason in str(raised.value)


@pytest.mark.parametrize(("stored", "found"), [([], "no resource"), (["a", "b"], "2 resources")])
def test_conditional_references_not_matching_one_resource_are_all_listed(stored, found):
    performer = {"reference": f"Practitioner?identifier={NPI}|0"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry({"resourceType": "Observation", "id": f"o{n}", "performer": [performer]})
            for n in range(2)
        ],
    }
    with pytest.raises(UnresolvedReferences) as raised:
        plan_bundle(bundle, lambda ref: stored)
    assert str(raised.value) == (
        f"entry[0]: Practitioner?identifier={NPI}|0 matches {found}; "
        f"entry[1]: Practitioner?identifier={NPI}|0 matches {found}"
    )
