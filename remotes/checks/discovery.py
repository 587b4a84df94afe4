"""Discovery checks: the SMART configuration (spec §7.1, checklist 54–55) and the
CapabilityStatement (§6, checklist 51–52)."""

from __future__ import annotations

from typing import Any

from remotes.checks.base import Facts, Recorder, is_absolute, media_type, parse_json

BULK_IG = "http://hl7.org/fhir/uv/bulkdata"
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


def _operation(operations: Any, definition: str) -> bool:
    return any(
        isinstance(op, dict) and op.get("name") == "export" and op.get("definition") == definition
        for op in (operations if isinstance(operations, list) else [])
    )


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
    rest = next(iter(_listed(statement, "rest")), None)
    rest = rest if isinstance(rest, dict) else {}
    resources = {r.get("type"): r for r in _listed(rest, "resource") if isinstance(r, dict)}
    declared = {
        "system": _operation(rest.get("operation"), OPERATIONS["system"]),
        "Patient": _operation(resources.get("Patient", {}).get("operation"), OPERATIONS["Patient"]),
        "Group": _operation(resources.get("Group", {}).get("operation"), OPERATIONS["Group"]),
    }
    missing = [level for level, found in declared.items() if not found]
    if len(missing) == len(declared):
        rec.fail("No export operation is declared.")
    elif missing:
        rec.warn(f"No export operation declared at level {', '.join(missing)}.")
    return "It instantiates the Bulk Data IG and declares all three export operations."
