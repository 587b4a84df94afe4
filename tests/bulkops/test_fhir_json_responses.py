"""FHIR JSON responses built from parsed bodies keep their decimals as written."""

from __future__ import annotations

from bulkops.fhir import resource_json
from bulkops.fhir_http import fhir_json


def test_a_parsed_body_answers_with_its_decimals_as_written():
    text = (
        '{"resourceType":"Observation","id":"o","valueQuantity":{"value":11208.90,"unit":"µg"},'
        '"component":[{"valueDecimal":1.000000000000000000001},{"valueInteger":7}]}'
    )
    response = fhir_json(resource_json.loads(text))
    assert response.content.decode() == text
    assert response["Content-Type"] == "application/fhir+json; charset=utf-8"
