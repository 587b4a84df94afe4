"""Discovery checks: the SMART configuration (spec §7.1, checklist 54–55) and the
CapabilityStatement (§6, checklist 51–52)."""

from __future__ import annotations

import urllib.parse
from typing import Any

from bulkops.outbound import FetchError
from remotes.checks.base import Facts, Recorder, is_absolute, media_type, parse_json
from remotes.discovery import declares_v4

BULK_IG = "http://hl7.org/fhir/uv/bulkdata"
MAX_OWN_DEFINITIONS = 3  # per level: a statement listing hundreds costs no more
OPERATIONS = {
    "system": f"{BULK_IG}/OperationDefinition/export",
    "Patient": f"{BULK_IG}/OperationDefinition/patient-export",
    "Group": f"{BULK_IG}/OperationDefinition/group-export",
}


def _listed(config: dict[str, Any], field: str) -> list[Any]:
    value = config.get(field)
    return value if isinstance(value, list) else []


def smart_configuration(rec: Recorder, facts: Facts) -> str:
    url = f"{rec.target.base_url}/.well-known/smart-configuration"
    result = rec.http("GET", url, headers={"Accept": "application/json"})
    rec.excerpt("smart-configuration", result.body)
    if result.status != 200:
        rec.fail(f"GET .well-known/smart-configuration answered {result.status}, not 200.")
        facts.token_url = rec.target.token_url
        return ""
    if media_type(result.headers) != "application/json":
        rec.fail(
            f"It is served as {media_type(result.headers) or 'no type'}, not application/json."
        )
    config = parse_json(rec, result, "smart-configuration")
    if not isinstance(config, dict):
        facts.token_url = rec.target.token_url
        return ""
    endpoint = config.get("token_endpoint")
    if not is_absolute(endpoint):
        rec.fail("token_endpoint is missing or not an absolute URL.")
    facts.token_url = rec.target.token_url or (endpoint if is_absolute(endpoint) else "")
    required = (
        ("grant_types_supported", "client_credentials"),
        ("token_endpoint_auth_methods_supported", "private_key_jwt"),
        ("capabilities", "client-confidential-asymmetric"),
    )
    for field, value in required:
        if value not in _listed(config, field):
            rec.fail(f"{field} does not list {value}.")
    algorithms = _listed(config, "token_endpoint_auth_signing_alg_values_supported")
    if not {"RS384", "ES384"} & set(algorithms):
        rec.fail("token_endpoint_auth_signing_alg_values_supported lists neither RS384 nor ES384.")
    elif rec.target.private_jwk.get("alg") not in algorithms:
        rec.warn(f"Our key signs {rec.target.private_jwk.get('alg')}, which is not listed.")
    if not _listed(config, "scopes_supported"):
        rec.fail("scopes_supported is missing (required for client-confidential-asymmetric).")
    if "S256" not in _listed(config, "code_challenge_methods_supported"):
        rec.warn("code_challenge_methods_supported does not list S256.")
    return "Every field a backend client needs is there; the token endpoint is advertised."


def _unversioned(canonical: str) -> str:
    """A canonical URL without its `|version` suffix."""
    return canonical.split("|")[0]


def _export_definitions(operations: Any) -> list[str]:
    """The definitions of the operations named export (a canonical in R4, a Reference
    in STU3)."""
    definitions = []
    for op in operations if isinstance(operations, list) else []:
        if not isinstance(op, dict) or op.get("name") != "export":
            continue
        definition = op.get("definition")
        if isinstance(definition, dict):
            definition = definition.get("reference")
        if isinstance(definition, str):
            definitions.append(definition)
    return definitions


def _based_on(rec: Recorder, definition: str, canonical: str) -> str:
    """Why `definition` is not an OperationDefinition of the server's own whose base is
    the Bulk Data `canonical` (fetched without a token, as /metadata is); "" when it is."""
    url = urllib.parse.urljoin(f"{rec.target.base_url}/", definition)
    try:
        result = rec.http("GET", url, headers={"Accept": "application/fhir+json"})
    except FetchError as error:
        return f"fetching it failed: {error}"
    try:
        resource = result.json()
    except ValueError:
        resource = None
    if result.status != 200 or not isinstance(resource, dict):
        return f"GET {url} answered {result.status} without an OperationDefinition"
    base = resource.get("base")
    if resource.get("resourceType") != "OperationDefinition" or not isinstance(base, str):
        return f"{url} is not an OperationDefinition with a base"
    return "" if _unversioned(base) == canonical else f"its base is {base}, not {canonical}"


def _declares(rec: Recorder, level: str, operations: Any) -> str:
    """Why no export operation at `level` is the Bulk Data one; "" when one is: its
    definition is the canonical (any version), or a definition of the server's own
    based on it (noted). At most MAX_OWN_DEFINITIONS of them are fetched."""
    definitions = _export_definitions(operations)
    canonical = OPERATIONS[level]
    if any(_unversioned(definition) == canonical for definition in definitions):
        return ""
    reasons = []
    for definition in definitions[:MAX_OWN_DEFINITIONS]:
        if not (why := _based_on(rec, definition, canonical)):
            rec.note(
                f"The {level} export operation names the server's own {definition}, "
                "based on the Bulk Data definition."
            )
            return ""
        reasons.append(f"{definition}: {why}")
    return "; ".join(reasons) or "no operation named export"


def capability_statement(rec: Recorder, facts: Facts) -> str:
    result = rec.http(
        "GET", f"{rec.target.base_url}/metadata", headers={"Accept": "application/fhir+json"}
    )
    rec.excerpt("CapabilityStatement", result.body)
    if result.status != 200:
        rec.fail(f"GET metadata answered {result.status}, not 200.")
        return ""
    statement = parse_json(rec, result, "CapabilityStatement")
    if not isinstance(statement, dict) or statement.get("resourceType") != "CapabilityStatement":
        rec.fail("The metadata answer is not a CapabilityStatement.")
        return ""
    if not any(str(url).split("|")[0] == f"{BULK_IG}/CapabilityStatement/bulk-data"
               for url in _listed(statement, "instantiates")):  # fmt: skip
        rec.fail("instantiates does not name the Bulk Data CapabilityStatement.")
    facts.export_v4 = declares_v4(statement)
    rest = next(iter(_listed(statement, "rest")), None)
    rest = rest if isinstance(rest, dict) else {}
    resources = {r.get("type"): r for r in _listed(rest, "resource") if isinstance(r, dict)}
    operations = {
        "system": rest.get("operation"),
        "Patient": resources.get("Patient", {}).get("operation"),
        "Group": resources.get("Group", {}).get("operation"),
    }
    missing = {
        level: why for level, ops in operations.items() if (why := _declares(rec, level, ops))
    }
    reasons = " ".join(f"{level}: {why}." for level, why in missing.items())
    if len(missing) == len(operations):
        rec.fail(f"No Bulk Data export operation is declared. {reasons}")
    elif missing:
        rec.warn(f"No Bulk Data export operation declared at level {', '.join(missing)}. {reasons}")
    return "It instantiates the Bulk Data IG and declares all three export operations."
