"""Kick-off parameters of $export (spec §1.2–1.4), parsed without Django.

The views hand over the request as name/value pairs (query string, or a POST
Parameters body flattened by `pairs_from_parameters`), the level and the Prefer
handling; `parse_export_parameters` returns a frozen `ExportParameters` or raises
`FhirError(400)`. Under `Prefer: handling=lenient` what bulkops cannot honour is dropped
and described in `warnings`, which end up as OperationOutcome lines in the manifest's
`error[]` (spec §1.2: one OO per ignored parameter).

`_typeFilter` filters are parsed here by the search engine (bulkops/fhir/type_filters.py)
and kept in the canonical form every worker parses again. `_until` comes from the Bulk
Data 3.0 ballot: only resources last updated at or before it.

`$export-v4` (Bulk Data 4.0.0-ballot, v4 digest §1.1-1.8) goes through the same parser
with `version=V4`: POST only, one value per parameter (a comma in `_type` or `_elements`
is refused under strict handling, `_typeFilter` values are never split),
`includeAssociatedData` as a `valueCoding`, and two more parameters,
`organizeOutputBy` and `allowPartialManifests`. A v2 kick-off does not know them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bulkops.fhir.outcome import NOT_SUPPORTED, FhirError
from bulkops.fhir.resource_types import R4_RESOURCE_TYPES
from bulkops.fhir.search import TypeSearch
from bulkops.fhir.search.dates import zone_plus_restored
from bulkops.fhir.type_filters import parse_filters

SYSTEM = "system"
PATIENT = "patient"
GROUP = "group"


LEVELS = (SYSTEM, PATIENT, GROUP)

NDJSON = "application/fhir+ndjson"
NDJSON_ALIASES = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})

STRICT = "strict"
LENIENT = "lenient"

# FHIR R4 `instant` (http://hl7.org/fhir/R4/datatypes.html#instant).
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INSTANT = re.compile(
    r"^(?P<date>[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]))"
    r"T(?P<time>([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?)"
    r"(?P<zone>Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$"
)
_ELEMENT = re.compile(r"^[a-z][A-Za-z0-9]*(\[x\])?$")
_PATIENT_REFERENCE = re.compile(r"^(?:.*/)?Patient/(?P<id>[A-Za-z0-9\-.]{1,64})$")
# The kick-off parameters bulkops knows; bulkops/fhir/operation_definitions.py publishes
# them, so a parameter added here must be described there.
LIST_PARAMETERS = frozenset({"_type", "_elements", "_typeFilter", "includeAssociatedData"})
SINGLE_PARAMETERS = frozenset({"_outputFormat", "_since", "_until"})
KNOWN_PARAMETERS = LIST_PARAMETERS | SINGLE_PARAMETERS | {"patient"}
# `patient` narrows a Patient or Group export; the system level has no patients (§1.3).
PATIENT_LEVELS = frozenset({PATIENT, GROUP})
# Bulk Data versions: 2.0.0 at $export, the 4.0.0 ballot at $export-v4 (v4 digest §0).
V2 = "2.0.0"
V4 = "4.0.0"
V4_SINGLE_PARAMETERS = frozenset({"organizeOutputBy", "allowPartialManifests"})
# The types whose instances a v4 export can organise its files by (v4 digest §1.7).
ORGANIZABLE_TYPES = frozenset({"Patient"})
INCLUDE_ASSOCIATED_DATA = "http://hl7.org/fhir/uv/bulkdata/CodeSystem/include-associated-data"
# The IG names no system for custom `_` codes (v4 digest §6.5): bulkops' own.
CUSTOM_ASSOCIATED_DATA = "urn:bulkops:include-associated-data"
# The reference server reads `_includeAssociatedData`; accept it as the IG's name (§9).
PARAMETER_ALIASES = {"_includeAssociatedData": "includeAssociatedData"}


def export_path(level: str, group_id: str = "", version: str = V2) -> str:
    """The kick-off path of a level below a FHIR base: `/Group/{id}/$export`,
    `/Patient/$export` or `/$export`, with `-v4` for the 4.0.0 ballot's operation."""
    operation = "$export-v4" if version == V4 else "$export"
    if level == GROUP:
        return f"/Group/{group_id}/{operation}"
    return f"/Patient/{operation}" if level == PATIENT else f"/{operation}"


def listed_pairs(name: str, values: Sequence[str], version: str) -> list[tuple[str, str]]:
    """A list parameter as kick-off pairs: one pair per value for $export-v4 (a v4 client
    SHALL NOT comma-join, v4 digest B2), one comma-joined pair for $export."""
    if not values:
        return []
    return [(name, value) for value in values] if version == V4 else [(name, ",".join(values))]


def accepted_parameters(level: str, version: str = V2) -> frozenset[str]:
    """The parameters a kick-off at `level` takes; any other is refused under strict
    handling and ignored with a warning under lenient."""
    known = known_parameters(version)
    return known if level in PATIENT_LEVELS else known - {"patient"}


def known_parameters(version: str) -> frozenset[str]:
    return KNOWN_PARAMETERS | V4_SINGLE_PARAMETERS if version == V4 else KNOWN_PARAMETERS


@dataclass(frozen=True)
class ElementSelection:
    """One `_elements` entry: `resource_type` None applies to every type (spec §1.3)."""

    resource_type: str | None
    element: str

    def as_text(self) -> str:
        """The entry as a client writes it: `Type.element` or `element`."""
        return f"{self.resource_type}.{self.element}" if self.resource_type else self.element

    @classmethod
    def from_text(cls, text: str) -> ElementSelection:
        """The inverse of `as_text`, for entries already validated and stored on a job."""
        resource_type, dot, element = text.partition(".")
        return cls(resource_type, element) if dot else cls(None, text)


@dataclass(frozen=True)
class ExportParameters:
    output_format: str = NDJSON
    since: datetime | None = None
    until: datetime | None = None
    types: tuple[str, ...] | None = None
    elements: tuple[ElementSelection, ...] = ()
    patients: tuple[str, ...] = ()
    type_filters: tuple[TypeSearch, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    organize_output_by: str | None = None  # v4 only
    allow_partial_manifests: bool = False  # v4 only

    def as_json(self) -> dict[str, Any]:
        """The parameters as stored on the job (and shown in the console)."""
        return {
            "_outputFormat": self.output_format,
            "_since": self.since.isoformat() if self.since else None,
            "_until": self.until.isoformat() if self.until else None,
            "_type": list(self.types) if self.types is not None else None,
            "_elements": [e.as_text() for e in self.elements],
            "_typeFilter": [search.text for search in self.type_filters],
            "patient": [f"Patient/{p}" for p in self.patients],
        } | self.v4_json()

    def v4_json(self) -> dict[str, Any]:
        """The v4 parameters, present only when given: a v2 job's stays as it was."""
        extra: dict[str, Any] = {}
        if self.organize_output_by:
            extra["organizeOutputBy"] = self.organize_output_by
        if self.allow_partial_manifests:
            extra["allowPartialManifests"] = True
        return extra


@dataclass(frozen=True)
class Prefer:
    respond_async: bool
    handling: str
    separate_export_status: bool = False  # v4 digest §1.1


def parse_prefer(header: str, *, default_handling: str = STRICT) -> Prefer:
    """Parse RFC 7240 `Prefer`; `respond-async` may be combined with `handling=`.
    Kick-offs are strict unless asked otherwise; searches pass FHIR's lenient default."""
    tokens = [token.strip().lower() for token in re.split(r"[,;]", header or "") if token.strip()]
    handling = default_handling
    for token in tokens:
        name, _, value = token.partition("=")
        if name.strip() == "handling" and value.strip().strip('"') in (STRICT, LENIENT):
            handling = value.strip().strip('"')
    return Prefer(
        respond_async="respond-async" in tokens,
        handling=handling,
        separate_export_status="separate-export-status" in tokens,
    )


def parse_instant(
    value: str,
    *,
    now: datetime,
    name: str = "_since",
    future: bool = False,
    clock_skew: timedelta = timedelta(0),
) -> datetime:
    """A FHIR instant, not later than `now` + `clock_skew` unless `future`. A `+` decoded
    to a space is put back."""
    text = zone_plus_restored(value)
    match = _INSTANT.match(text)
    if not match and _DATE_ONLY.match(text):
        # Refused whatever the handling: guessing a time zone would shift the window by
        # hours, and a client would silently miss or repeat that much data.
        raise FhirError(
            400,
            f"{name} must be a FHIR instant with a time zone, not a date: for the start of "
            f"{text} in UTC send {name}={text}T00:00:00Z.",
        )
    if not match:
        raise FhirError(
            400,
            f"{name} must be a FHIR instant with a time zone, e.g. 2024-01-31T12:00:00Z; "
            f"got {value!r}.",
        )
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace(":60", ":59"))
        parsed.astimezone(UTC)  # what the database stores; year 1 at +14:00 is year 0
    except (ValueError, OverflowError):  # 2020-02-30, year 0000, or off the calendar
        raise FhirError(400, f"{name} {value!r} is not a date and time that exists.") from None
    if parsed > now + clock_skew and not future:
        ahead = int(clock_skew.total_seconds())
        raise FhirError(
            400,
            f"{name} {value!r} is in the future (more than {ahead} seconds ahead of this "
            "server's clock).",
        )
    return parsed


def split_list(values: Iterable[str]) -> list[str]:
    """`_type=A&_type=B` equals `_type=A,B` (spec §1.3, SHALL)."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


class _Collector:
    """Applies the strict/lenient rule: strict raises, lenient records a warning."""

    def __init__(self, handling: str) -> None:
        self.handling = handling
        self.warnings: list[str] = []

    def unsupported(self, message: str) -> None:
        if self.handling == STRICT:
            raise FhirError(
                400,
                f"{message} Send 'Prefer: handling=lenient' to run the export without it.",
                code=NOT_SUPPORTED,
            )
        self.warnings.append(f"{message} It was ignored (Prefer: handling=lenient).")


def parse_export_parameters(
    pairs: Sequence[tuple[str, str]],
    *,
    level: str,
    handling: str,
    now: datetime,
    method: str = "GET",
    base_url: str = "",
    clock_skew: timedelta = timedelta(0),
    version: str = V2,
) -> ExportParameters:
    """Validate kick-off parameters for `level`; see the module docstring. `base_url`
    is this server's FHIR base: filters' absolute references to it become relative.
    `_since` may be up to `clock_skew` ahead of `now`: a client whose clock runs a
    little ahead of ours, sending its own "now", is not refused."""
    collector = _Collector(handling)
    grouped: dict[str, list[str]] = {}
    known = known_parameters(version)
    for raw_name, value in pairs:
        name = PARAMETER_ALIASES.get(raw_name, raw_name)
        if name not in known:
            collector.unsupported(f"bulkops does not support the parameter {raw_name!r}.")
            continue
        grouped.setdefault(name, []).append(value)

    singles = SINGLE_PARAMETERS | V4_SINGLE_PARAMETERS if version == V4 else SINGLE_PARAMETERS
    for name in singles:
        if len(grouped.get(name, [])) > 1:
            raise FhirError(400, f"{name} may be given only once.")
    if version == V4:
        _check_one_value_each(grouped, collector)

    output_format = grouped.get("_outputFormat", [NDJSON])[0].strip()
    if output_format not in NDJSON_ALIASES:
        raise FhirError(
            400,
            f"_outputFormat {output_format!r} is not supported; use application/fhir+ndjson.",
            code=NOT_SUPPORTED,
        )
    since = (
        parse_instant(grouped["_since"][0], now=now, clock_skew=clock_skew)
        if "_since" in grouped
        else None
    )
    until = _parse_until(grouped, since=since, now=now)
    types = _parse_types(grouped, collector)
    organize_output_by = _parse_organize_output_by(grouped, collector)
    return ExportParameters(
        output_format=NDJSON,
        since=since,
        until=until,
        types=types,
        elements=_parse_elements(grouped, collector),
        patients=_parse_patients(grouped, collector, level=level, method=method),
        type_filters=_parse_type_filters(
            grouped, collector, types=types, now=now, base_url=base_url, split=version != V4
        ),
        warnings=tuple(collector.warnings) + _ignored_experimental(grouped, collector),
        organize_output_by=organize_output_by,
        allow_partial_manifests=_parse_boolean(grouped, "allowPartialManifests"),
    )


def _check_one_value_each(grouped: dict[str, list[str]], collector: _Collector) -> None:
    """A v4 client SHALL NOT comma-join values (v4 digest B2): refused under strict
    handling, read as the v2 list form under lenient."""
    for name in ("_type", "_elements"):
        joined = [value for value in grouped.get(name, []) if "," in value]
        if joined and collector.handling == STRICT:
            raise FhirError(
                400,
                f"{name} {joined[0]!r} joins values with commas; $export-v4 takes one value "
                f"per {name} parameter, repeated as needed.",
            )


def _parse_organize_output_by(grouped: dict[str, list[str]], collector: _Collector) -> str | None:
    if "organizeOutputBy" not in grouped:
        return None
    value = grouped["organizeOutputBy"][0].strip()
    if value not in ORGANIZABLE_TYPES:
        offered = ", ".join(sorted(ORGANIZABLE_TYPES)) or "no type yet"
        collector.unsupported(
            f"bulkops cannot organise output by {value!r}; it organises by {offered}."
        )
        return None
    return value


def _parse_boolean(grouped: dict[str, list[str]], name: str) -> bool:
    if name not in grouped:
        return False
    value = grouped[name][0].strip()
    if value not in ("true", "false"):
        raise FhirError(400, f"{name} must be true or false, not {value!r}.")
    return value == "true"


def _parse_until(
    grouped: dict[str, list[str]], *, since: datetime | None, now: datetime
) -> datetime | None:
    """`_until` (Bulk Data 3.0 ballot): resources last updated at or before it. Later
    than transactionTime changes nothing; not after `_since` selects nothing, so 400."""
    if "_until" not in grouped:
        return None
    until = parse_instant(grouped["_until"][0], now=now, name="_until", future=True)
    if since is not None and until <= since:
        raise FhirError(400, "_until must be later than _since.")
    return until


def _parse_types(grouped: dict[str, list[str]], collector: _Collector) -> tuple[str, ...] | None:
    if "_type" not in grouped:
        return None
    requested = split_list(grouped["_type"])
    if not requested:
        raise FhirError(400, "_type was given without any resource type.")
    unknown = [name for name in requested if name not in R4_RESOURCE_TYPES]
    if unknown:
        message = f"_type names unknown resource types: {', '.join(unknown)}."
        if collector.handling == STRICT:
            raise FhirError(400, message)
        collector.warnings.append(f"{message} They were ignored (Prefer: handling=lenient).")
    known = [name for name in dict.fromkeys(requested) if name in R4_RESOURCE_TYPES]
    if not known:
        raise FhirError(400, "_type names no known resource type.")
    return tuple(known)


def _parse_elements(
    grouped: dict[str, list[str]], collector: _Collector
) -> tuple[ElementSelection, ...]:
    selections: list[ElementSelection] = []
    for entry in split_list(grouped.get("_elements", [])):
        typed = entry[:1].isupper()
        resource_type, _, element = entry.partition(".") if typed else ("", "", entry)
        if typed and resource_type not in R4_RESOURCE_TYPES:
            collector.unsupported(f"_elements entry {entry!r} names an unknown resource type.")
            continue
        if not _ELEMENT.match(element):
            collector.unsupported(
                f"_elements entry {entry!r} is not a top-level element "
                "(use 'element' or 'Type.element')."
            )
            continue
        selections.append(ElementSelection(resource_type or None, element))
    return tuple(dict.fromkeys(selections))


def _parse_type_filters(
    grouped: dict[str, list[str]],
    collector: _Collector,
    *,
    types: tuple[str, ...] | None,
    now: datetime,
    base_url: str,
    split: bool = True,
) -> tuple[TypeSearch, ...]:
    """Each filter parsed; one that cannot be applied is refused (strict) or dropped
    with its refusal as the warning (lenient), leaving its type's other filters."""
    searches: list[TypeSearch] = []
    for parsed in parse_filters(
        grouped.get("_typeFilter", []), now=now, base_url=base_url, types=types, split=split
    ):
        if parsed.search is None:
            collector.unsupported(parsed.problem)
        elif parsed.search not in searches:
            searches.append(parsed.search)
    return tuple(searches)


def _parse_patients(
    grouped: dict[str, list[str]], collector: _Collector, *, level: str, method: str
) -> tuple[str, ...]:
    if "patient" not in grouped:
        return ()
    if method != "POST":
        raise FhirError(400, "The patient parameter is accepted only in a POST Parameters body.")
    if level not in PATIENT_LEVELS:
        collector.unsupported("The patient parameter applies to Patient and Group exports only.")
        return ()
    ids: list[str] = []
    for reference in grouped["patient"]:
        match = _PATIENT_REFERENCE.match(reference.strip())
        if not match:
            raise FhirError(400, f"patient {reference!r} is not a reference like Patient/123.")
        ids.append(match["id"])
    return tuple(dict.fromkeys(ids))


def _ignored_experimental(grouped: dict[str, list[str]], collector: _Collector) -> tuple[str, ...]:
    """includeAssociatedData: strict refuses, lenient ignores (issue scope)."""
    before = len(collector.warnings)
    if grouped.get("includeAssociatedData"):
        collector.unsupported("bulkops does not support includeAssociatedData yet.")
    return tuple(collector.warnings[before:])


def pairs_from_parameters(
    body: Any, *, version: str = V2, handling: str = STRICT
) -> list[tuple[str, str]]:
    """Flatten a FHIR `Parameters` resource (POST kick-off, spec §1.1) to name/value pairs.
    A v4 body also carries `valueBoolean` and `includeAssociatedData` as a `valueCoding`."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError(400, "A POST kick-off body must be a FHIR Parameters resource.")
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list):
        raise FhirError(400, "Parameters.parameter must be a list.")
    pairs: list[tuple[str, str]] = []
    for index, parameter in enumerate(parameters):
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if not isinstance(name, str) or not name:
            raise FhirError(400, f"Parameters.parameter[{index}] has no name.")
        if version == V4:
            pairs.append((name, _v4_parameter_value(parameter, index, handling)))
        else:
            pairs.append((name, _parameter_value(parameter, index)))
    return pairs


def _v4_parameter_value(parameter: dict[str, Any], index: int, handling: str) -> str:
    """A v4 value: booleans as `true`/`false`; `includeAssociatedData` is a Coding of the
    IG's code system, or of bulkops' own for `_` codes (v4 digest §1.6); its v2 forms
    (`valueCode`, `valueString`) only under lenient handling."""
    if isinstance(parameter.get("valueBoolean"), bool):
        return "true" if parameter["valueBoolean"] else "false"
    if parameter["name"] != "includeAssociatedData":
        return _parameter_value(parameter, index)
    coding = parameter.get("valueCoding")
    if not isinstance(coding, dict):
        if handling == LENIENT:
            return _parameter_value(parameter, index)
        raise FhirError(
            400,
            f"Parameters.parameter[{index}] (includeAssociatedData) must be a valueCoding "
            f"with system {INCLUDE_ASSOCIATED_DATA}.",
        )
    code, system = coding.get("code"), coding.get("system")
    expected = CUSTOM_ASSOCIATED_DATA if str(code).startswith("_") else INCLUDE_ASSOCIATED_DATA
    if not isinstance(code, str) or system != expected:
        raise FhirError(
            400,
            f"Parameters.parameter[{index}] (includeAssociatedData) needs a code and the "
            f"system {expected}.",
        )
    return code


def _parameter_value(parameter: dict[str, Any], index: int) -> str:
    reference = parameter.get("valueReference")
    if isinstance(reference, dict) and isinstance(reference.get("reference"), str):
        return reference["reference"]
    for key in ("valueString", "valueInstant", "valueCode", "valueDateTime", "valueUri"):
        if isinstance(parameter.get(key), str):
            return parameter[key]
    raise FhirError(
        400,
        f"Parameters.parameter[{index}] ({parameter['name']}) has no supported value "
        "(valueString, valueInstant, valueCode or valueReference).",
    )
