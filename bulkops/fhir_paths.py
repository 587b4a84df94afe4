"""Path converters for FHIR URLs, registered on import: `fhir_type` and `fhir_id`.

Every URLconf with a FHIR type or id in its routes imports this module, so the
converters exist whichever URLconf Django loads first."""

from __future__ import annotations

from django.urls import register_converter


class ResourceTypeConverter:
    regex = "[A-Z][A-Za-z]{1,63}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class FhirIdConverter(ResourceTypeConverter):
    # http://hl7.org/fhir/R4/datatypes.html#id: `$export` and friends never match.
    regex = r"[A-Za-z0-9\-\.]{1,64}"


register_converter(ResourceTypeConverter, "fhir_type")
register_converter(FhirIdConverter, "fhir_id")
