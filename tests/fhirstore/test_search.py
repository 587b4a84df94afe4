"""FHIR search on the store: GET /fhir/{type}?... and POST /fhir/{type}/_search.

Expected results on the shared Synthea data are computed here with plain JSON code,
not with the search engine, so the two are checked against each other.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from fhirstore.writes import put_resource
from tests.exports.conftest import observation
from tests.shared_data import SYNTHEA_NDJSON, needs_synthea, synthea_ndjson

pytestmark = pytest.mark.django_db


def get(client, url: str, **headers: str) -> Any:
    """GET a search (or a link from one: its path and query only)."""
    parts = urlsplit(url)
    path = f"{parts.path}?{parts.query}" if parts.query else parts.path
    return client.request("get", path, headers=headers)


def search_all(client, url: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Every id a search lists, following `next` links, and each page's Bundle."""
    ids, bundles = [], []
    while url:
        response = get(client, url)
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("application/fhir+json")
        bundle = response.json()
        bundles.append(bundle)
        ids += [
            e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"
        ]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), "")
    return ids, bundles


# What each parameter type selects, computed from the JSON alone.
def _codes(concept: dict[str, Any] | None) -> set[str]:
    return {c.get("code") for c in (concept or {}).get("coding", [])}


def _period_end(encounter: dict[str, Any]) -> str:
    period = encounter.get("period", {})
    return period.get("end") or period.get("start") or ""


@needs_synthea
def test_each_parameter_type_selects_what_plain_json_code_selects(client_a, load_fhir):
    assert not load_fhir(SYNTHEA_NDJSON).failed
    patients = synthea_ndjson("Patient")
    conditions = synthea_ndjson("Condition")
    encounters = synthea_ndjson("Encounter")
    procedures = synthea_ndjson("Procedure")
    someone = "8e1a0a7c-e308-444b-075a-3c2b1f60f881"
    common_code = Counter(code for p in procedures for code in _codes(p["code"])).most_common(1)[0][
        0
    ]
    cases = {
        # token
        "/fhir/Condition?clinical-status=active": {
            c["id"] for c in conditions if "active" in _codes(c.get("clinicalStatus"))
        },
        f"/fhir/Procedure?code=http://snomed.info/sct|{common_code}": {
            p["id"] for p in procedures if common_code in _codes(p["code"])
        },
        # identifier (token), _id
        f"/fhir/Patient?identifier=http://hospital.smarthealthit.org|{someone}": {someone},
        f"/fhir/Patient?_id={someone},{patients[0]['id']},nope": {someone, patients[0]["id"]},
        # reference, through the compartment index
        f"/fhir/Condition?patient={someone}": {
            c["id"] for c in conditions if c["subject"]["reference"].endswith(someone)
        },
        f"/fhir/Encounter?subject=Patient/{someone}": {
            e["id"] for e in encounters if e["subject"]["reference"].endswith(someone)
        },
        # string (starts with, any case)
        "/fhir/Patient?family=schumm": {
            p["id"] for p in patients if p["name"][0]["family"].lower().startswith("schumm")
        },
        # date
        "/fhir/Patient?birthdate=lt1970": {p["id"] for p in patients if p["birthDate"] < "1970"},
        "/fhir/Encounter?date=ge2021-01-01": {
            e["id"] for e in encounters if _period_end(e)[:10] >= "2021-01-01"
        },
        # AND of two parameters
        f"/fhir/Encounter?patient={someone}&date=ge2021-01-01": {
            e["id"]
            for e in encounters
            if e["subject"]["reference"].endswith(someone) and _period_end(e)[:10] >= "2021-01-01"
        },
        # _lastUpdated: everything was loaded a moment ago
        "/fhir/Patient?_lastUpdated=gt2000-01-01T00:00:00Z": {p["id"] for p in patients},
        "/fhir/Patient?_lastUpdated=lt2000-01-01": set(),
    }
    for url, expected in cases.items():
        assert expected or url.endswith("lt2000-01-01"), url  # a case that selects something
        ids, bundles = search_all(client_a, f"{url}&_count=7")
        assert sorted(ids) == sorted(expected), url
        if "total" in bundles[0]:
            assert bundles[0]["total"] == len(expected), url


def test_result_parameters_shape_the_page(client_a, store):
    everything, _ = search_all(client_a, "/fhir/Observation")
    assert sorted(everything) == ["p1-o0", "p1-o1", "p2-o0", "p2-o1", "p3-o0", "p3-o1"]
    counted = get(client_a, "/fhir/Observation?patient=p1&_summary=count").json()
    assert (counted["total"], counted.get("entry")) == (2, [])
    subset = get(client_a, "/fhir/Observation?_id=p1-o0&_elements=status").json()
    (resource,) = [entry["resource"] for entry in subset["entry"]]
    assert set(resource) == {"resourceType", "id", "meta", "status", "code"}  # code: mandatory
    assert {"code": "SUBSETTED"}.items() <= resource["meta"]["tag"][-1].items()
    assert subset["total"] == 1  # _id alone: counted by the database


def test_an_unknown_parameter_is_ignored_with_a_warning_unless_strict(client_a, store):
    lenient = get(client_a, "/fhir/Observation?patient=p1&_sort=date&colour=blue")
    assert lenient.status_code == 200
    outcome, *matches = lenient.json()["entry"]
    assert outcome["search"]["mode"] == "outcome"
    assert [issue["severity"] for issue in outcome["resource"]["issue"]] == ["warning"] * 2
    assert "'colour' cannot be applied" in outcome["resource"]["issue"][1]["diagnostics"]
    assert sorted(m["resource"]["id"] for m in matches) == ["p1-o0", "p1-o1"]
    strict = get(client_a, "/fhir/Observation?patient=p1&colour=blue", Prefer="handling=strict")
    assert strict.status_code == 400
    assert (
        "Observation has no search parameter 'colour'" in strict.json()["issue"][0]["diagnostics"]
    )


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("date=yesterday", "is not a date like 2024"),
        ("_count=-1", "_count must be a non-negative integer"),
        ("_summary=true", "_summary=true is not supported"),
        ("_elements=a.b", "_elements takes top-level element names"),
    ],
)
def test_a_malformed_value_is_a_400_whatever_the_handling(client_a, store, query, words):
    response = get(client_a, f"/fhir/Observation?{query}")
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert words in response.json()["issue"][0]["diagnostics"]


def test_post_search_takes_a_form_body(client_a, store):
    token = client_a.token()
    response = client_a.http.post(
        "/fhir/Observation/_search",
        data="patient=Patient%2Fp2&_count=1",
        content_type="application/x-www-form-urlencoded",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    bundle = response.json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["p2-o0"]
    (next_url,) = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
    assert [e["resource"]["id"] for e in get(client_a, next_url).json()["entry"]] == ["p2-o1"]
    refused = client_a.http.post(
        "/fhir/Observation/_search",
        data={"patient": "p2"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 415


def test_paging_neither_repeats_nor_skips_while_the_store_is_written(client_a, store):
    """Pages are keyset on the row id: resources written between two pages (new ones,
    and updates of ones already listed or still to come) never shift the pages."""
    for n in range(2, 9):
        put_resource(
            resource_type="Observation",
            resource_id=f"p1-o{n}",
            body=observation(f"p1-o{n}", "p1"),
            now=timezone.now(),
        )
    before = [f"p1-o{n}" for n in range(9)]
    url, seen, round_ = "/fhir/Observation?patient=p1&_count=2", [], 0
    while url:
        bundle = get(client_a, url).json()
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        round_ += 1
        for oid in (f"p1-o{round_ - 1}", f"p1-o{8 - round_}"):  # one listed, one to come
            changed = {**observation(oid, "p1"), "status": "amended"}
            put_resource(
                resource_type="Observation", resource_id=oid, body=changed, now=timezone.now()
            )
        put_resource(
            resource_type="Observation",
            resource_id=f"new-{round_}",
            body=observation(f"new-{round_}", "p1"),
            now=timezone.now(),
        )
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), "")
    assert len(seen) == len(set(seen))
    assert set(before) <= set(seen)
    assert round_ >= 5


def test_unknown_types_and_routes_answer_a_404_outcome(client_a, store):
    for path in ("/fhir/Spaceship", "/fhir/Spaceship?x=1", "/fhir/", "/fhir/nope/at/all"):
        response = get(client_a, path)
        assert response.status_code == 404, path
        assert response["Content-Type"].startswith("application/fhir+json"), path
        assert json.loads(response.content)["resourceType"] == "OperationOutcome", path


@pytest.mark.django_db(transaction=True)
def test_smart_fetch_crawl_requests_against_a_live_server(live_server, store, client_a):
    """The requests smart-fetch's crawl and reference fetching make, over real HTTP."""
    import httpx

    put_resource(
        resource_type="PractitionerRole",
        resource_id="role1",
        body={
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": "Practitioner/dr1"},
        },
        now=timezone.now(),
    )
    since = (store["written"] + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    base = f"{live_server.url}/fhir"
    headers = {"Authorization": f"Bearer {client_a.token()}", "Accept": "application/fhir+json"}
    metadata = httpx.get(f"{base}/metadata").json()
    observation_entry = next(
        r for r in metadata["rest"][0]["resource"] if r["type"] == "Observation"
    )
    assert "_lastUpdated" in {p["name"] for p in observation_entry["searchParam"]}

    def ids(url: str, **params: str) -> list[str]:
        """Every id listed, the next links followed as they are given."""
        found = []
        url = str(httpx.URL(url, params=params))
        while url:
            bundle = httpx.get(url, headers=headers).raise_for_status().json()
            assert bundle["type"] == "searchset"
            found += [e["resource"]["id"] for e in bundle["entry"]]
            url = next((x["url"] for x in bundle["link"] if x["relation"] == "next"), "")
        return found

    assert ids(f"{base}/Observation", patient="p1") == ["p1-o0", "p1-o1"]
    assert ids(f"{base}/Patient", _id="p1,p3") == ["p1", "p3"]
    assert ids(f"{base}/PractitionerRole", practitioner="dr1") == ["role1"]
    assert ids(f"{base}/Observation", patient="p2", _lastUpdated=f"gt{since}") == []
    assert ids(f"{base}/PractitionerRole", _lastUpdated=f"gt{since}") == ["role1"]
    assert ids(f"{base}/Observation", patient="p3", _count="1") == ["p3-o0", "p3-o1"]


@pytest.mark.parametrize(
    ("query", "patients"),
    [
        ("Observation?patient=p1", ["p1"]),  # what smart-fetch's crawl sends
        ("Observation?subject=Patient/p1,Patient/p2", ["p1", "p2"]),
        ("Encounter?patient=Patient/p1", ["p1"]),
        ("Observation?subject=p1", None),  # may be Group/p1, which no compartment holds
        ("Observation?subject=Group/g1", None),
        ("Observation?patient:missing=true", None),
        ("Observation?code=8867-4", None),
    ],
)
def test_patient_searches_read_through_the_compartment_index(query, patients):
    """Which criteria the compartment index may answer: only those whose every match
    is in the named patients' compartments."""
    from datetime import UTC, datetime

    from bulkops.fhir.search import parse_type_search
    from fhirstore.search import compartment_patients

    (criterion,) = parse_type_search(query, now=datetime.now(UTC)).criteria
    assert compartment_patients(criterion) == patients
