"""Finding a remote server's token endpoint, as SMART Backend Services clients do:
.well-known/smart-configuration first, then the CapabilityStatement's oauth-uris
extension. Errors say which step failed, so an operator knows what to fix there."""

from __future__ import annotations

from typing import Any

from bulkops.outbound import AddressRefused, FetchError
from exports.bulk_client import ExchangeHook, HttpResult, http

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
# Seconds for each step; discovery runs inside the console request that saves a server.
STEP_TIMEOUT = 10


class DiscoveryError(Exception):
    """No token endpoint could be found; the message names each step's failure."""


def discover_token_url(
    base_url: str, *, verify_tls: bool = True, on_exchange: ExchangeHook | None = None
) -> str:
    """The token endpoint's URL, or DiscoveryError. A server bulkops may not fetch from
    (bulkops.outbound) is refused at once, with no second step to say the same again."""
    base = base_url.rstrip("/")

    def get(path: str) -> HttpResult | str:
        try:
            return _get(base, path, verify_tls=verify_tls, on_exchange=on_exchange)
        except AddressRefused as error:
            raise DiscoveryError(str(error)) from None
        except FetchError as error:
            return str(error)

    smart = get("/.well-known/smart-configuration")
    token_url, smart_problem = _from_smart_configuration(smart)
    if token_url:
        return token_url
    token_url, metadata_problem = _from_capability_statement(get("/metadata"))
    if token_url:
        return token_url
    raise DiscoveryError(f"{smart_problem} and {metadata_problem}")


def _get(base: str, path: str, *, verify_tls: bool, on_exchange: ExchangeHook | None) -> HttpResult:
    return http(
        "GET",
        f"{base}{path}",
        headers={"Accept": "application/json"},
        timeout=STEP_TIMEOUT,
        verify_tls=verify_tls,
        on_exchange=on_exchange,
    )


def _json(result: HttpResult) -> object:
    try:
        return result.json()
    except ValueError:
        return None


def _from_smart_configuration(result: HttpResult | str) -> tuple[str, str]:
    if isinstance(result, str):
        return "", f"no smart-configuration ({result})"
    if result.status != 200:
        return "", f"no smart-configuration (HTTP {result.status})"
    body = _json(result)
    if not isinstance(body, dict):
        return "", "the smart-configuration is not a JSON object"
    token = body.get("token_endpoint")
    if not isinstance(token, str) or not token.startswith(("http://", "https://")):
        return "", "the smart-configuration has no token_endpoint URL"
    return token, ""


def _from_capability_statement(result: HttpResult | str) -> tuple[str, str]:
    if isinstance(result, str):
        return "", f"no CapabilityStatement ({result})"
    if result.status != 200:
        return "", f"no CapabilityStatement at /metadata (HTTP {result.status})"
    body = _json(result)
    if not isinstance(body, dict) or body.get("resourceType") != "CapabilityStatement":
        return "", "/metadata did not return a CapabilityStatement"
    for rest in body.get("rest") or []:
        security = rest.get("security") or {} if isinstance(rest, dict) else {}
        for extension in security.get("extension") or []:
            if extension.get("url") != OAUTH_URIS:
                continue
            for inner in extension.get("extension") or []:
                if inner.get("url") == "token" and inner.get("valueUri"):
                    return str(inner["valueUri"]), ""
    return "", "the CapabilityStatement has no oauth-uris extension with a token URL"


def _listed(value: Any, name: str) -> list[Any]:
    listed = value.get(name) if isinstance(value, dict) else None
    return listed if isinstance(listed, list) else []


def declares_v4(statement: Any) -> bool:
    """Whether a CapabilityStatement lists an `export-v4` operation (the 4.0.0 ballot
    beside 2.0.0, v4 digest §0) at any level."""
    rest = next(iter(_listed(statement, "rest")), None)
    operations = _listed(rest, "operation")
    for resource in _listed(rest, "resource"):
        operations = [*operations, *_listed(resource, "operation")]
    return any(isinstance(op, dict) and op.get("name") == "export-v4" for op in operations)


def offers_export_v4(
    base_url: str, *, verify_tls: bool = True, on_exchange: ExchangeHook | None = None
) -> bool:
    """Whether the server's CapabilityStatement offers `export-v4`; a server without a
    readable one does not."""
    result = _get(base_url.rstrip("/"), "/metadata", verify_tls=verify_tls, on_exchange=on_exchange)
    return result.status == 200 and declares_v4(_json(result))
