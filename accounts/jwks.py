"""Client public keys: validating JWK Sets, fetching jwks_uri, choosing the key by kid.

Spec §7.2: keys come inline or from an https jwks_uri (fetched with `Accept:
application/json`, cached no longer than its Cache-Control allows, refetched once when
an assertion names an unknown `kid`). bulkops verifies RS384 with RSA ≥ 2048 bits and
ES384 with EC P-384; anything else in a set is listed as ignored and never used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import jwt
from django.conf import settings

from accounts.key_expiry import expiry_problem, issuer_expiry
from accounts.models import BackendClient, CachedJwks, ClientKey
from bulkops import untrusted_json
from bulkops.outbound import FetchError, request
from bulkops.signing_keys import MIN_RSA_BITS, PRIVATE_MEMBERS, THUMBPRINT_MEMBERS, thumbprint

FETCH_TIMEOUT = 5.0  # seconds: the token request waits for this
MAX_JWKS_BYTES = 64 * 1024  # pasted or fetched: a real set is a few kilobytes
MAX_JWKS_KEYS = 20  # every key is parsed to check it; a client rotates a handful
MAX_CACHE_SECONDS = 24 * 3600  # even a generous max-age cannot hide a rotation for long
KEY_ALGORITHMS = {"RSA": "RS384", "EC": "ES384"}
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


class JwksError(Exception):
    """A JWK Set (or its URL) that cannot be used; the message says why, for people."""


class KeyExpired(JwksError):
    """The key named by an assertion is past its certificate's notAfter or its exp."""


@dataclass(frozen=True)
class KeyInfo:
    """What one key in a set is good for: `algorithm` when usable, else `problem`."""

    kid: str
    kty: str
    algorithm: str | None
    problem: str = ""
    thumbprint: str = ""  # RFC 7638, which an assertion may name as its kid instead

    def describe(self) -> str:
        if self.algorithm:
            return f"kid {self.kid!r}: {self.kty} key, verifies {self.algorithm}"
        return f"kid {self.kid!r}: ignored, {self.problem}"


def validate_jwks(data: Any) -> list[KeyInfo]:
    """Every key's `KeyInfo`, or JwksError if the set is malformed, holds private key
    material, or has no key usable for RS384/ES384."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
        raise JwksError('A JWK Set is a JSON object with a non-empty "keys" array.')
    if len(data["keys"]) > MAX_JWKS_KEYS:
        raise JwksError(
            f"The JWK Set has {len(data['keys'])} keys; at most {MAX_JWKS_KEYS} are accepted."
        )
    if len(json.dumps(data)) > MAX_JWKS_BYTES:
        raise JwksError(f"The JWK Set is larger than {MAX_JWKS_BYTES} bytes.")
    infos = [_inspect(key) for key in data["keys"]]
    kids = [info.kid for info in infos]
    if len(set(kids)) != len(kids):
        raise JwksError("Every key needs its own kid; the set repeats one.")
    if not any(info.algorithm for info in infos):
        problems = "; ".join(info.describe() for info in infos)
        raise JwksError(
            "The JWK Set has no public RSA (≥ 2048 bits) or EC P-384 key usable for "
            f"RS384/ES384: {problems}."
        )
    return infos


def _inspect(jwk: Any) -> KeyInfo:
    if not isinstance(jwk, dict):
        raise JwksError("Every entry of keys must be a JSON object (a JWK).")
    kid, kty = jwk.get("kid"), jwk.get("kty")
    if not isinstance(kid, str) or not kid or not isinstance(kty, str):
        raise JwksError("Every key needs a kty and a non-empty kid (spec §7.2).")
    private = sorted(PRIVATE_MEMBERS & jwk.keys())
    if private:
        raise JwksError(
            f"Key {kid!r} contains private key material ({', '.join(private)}). Submit "
            "only the public keys; the private key never leaves the client."
        )
    problem = _usability_problem(jwk, kty)
    algorithm = None if problem else KEY_ALGORITHMS[kty]
    return KeyInfo(kid, kty, algorithm, problem, jwk_thumbprint(jwk) or "")


def jwk_thumbprint(jwk: dict[str, Any]) -> str | None:
    """The key's RFC 7638 JWK thumbprint (SHA-256, base64url without padding), or None
    for a key type bulkops does not verify. Clients that hold a PEM key rather than a
    JWK (cumulus-etl, smart-fetch) send it as the assertion's kid."""
    members = THUMBPRINT_MEMBERS.get(jwk.get("kty", ""))
    if members is None or not all(isinstance(jwk.get(name), str) for name in members):
        return None
    return thumbprint(jwk)


def parsed_key(jwk: dict[str, Any], algorithm: str) -> jwt.PyJWK:
    """The JWK as a key object for `algorithm`, or PyJWT's error if it does not parse.

    Every token request needs its client's key, and building one (an EC point check, an
    RSA public-number load) costs more than the rest of the JWKS handling; parsed keys are
    kept per process under their whole JSON, so a changed key is simply a new entry."""
    return _parse_key(json.dumps(jwk, sort_keys=True), algorithm)


@lru_cache(maxsize=256)
def _parse_key(canonical_jwk: str, algorithm: str) -> jwt.PyJWK:
    return jwt.PyJWK(json.loads(canonical_jwk), algorithm)


def _usability_problem(jwk: dict[str, Any], kty: str) -> str:
    """Why the key cannot verify RS384/ES384 assertions, or "" if it can."""
    expected = KEY_ALGORITHMS.get(kty)
    if expected is None:
        return f"key type {kty} cannot verify RS384 or ES384"
    if kty == "EC" and jwk.get("crv") != "P-384":
        return f"EC curve {jwk.get('crv')} is not P-384"
    if jwk.get("alg", expected) != expected:
        return f"alg {jwk['alg']} is not {expected}"
    if jwk.get("use", "sig") != "sig":
        return f"use {jwk['use']} is not sig"
    if "key_ops" in jwk and "verify" not in (jwk["key_ops"] or []):
        return "key_ops does not allow verify"
    try:
        key = parsed_key(jwk, expected).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        return "its key values do not parse"
    if kty == "RSA" and key.key_size < MIN_RSA_BITS:
        return f"RSA key is {key.key_size} bits; at least {MIN_RSA_BITS} are required"
    return expiry_problem(jwk, key)


def key_bits(jwk: Any) -> int | None:
    """The key size in bits (RSA modulus, EC curve order), None if it does not parse."""
    kty = jwk.get("kty") if isinstance(jwk, dict) else None
    if kty not in KEY_ALGORITHMS:
        return None
    try:
        return int(parsed_key(jwk, KEY_ALGORITHMS[kty]).key.key_size)
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, AttributeError):
        return None


def check_jwks_uri(url: str) -> None:
    """Only https jwks_uri values, unless BULKOPS_ALLOW_HTTP_JWKS (local testing)."""
    scheme = urlsplit(url).scheme
    allowed = ("https", "http") if settings.BULKOPS_ALLOW_HTTP_JWKS else ("https",)
    if scheme not in allowed:
        raise JwksError(
            f"The JWKS URL must use https (got {scheme or 'no scheme'}); plain http is "
            "allowed only with BULKOPS_ALLOW_HTTP_JWKS=true, for local testing."
        )


def cache_seconds(cache_control: str) -> int:
    """How long a response may be reused: its `max-age`, none with `no-store` or
    `no-cache`, and none when the server says nothing (spec §7.2: never longer)."""
    directives = cache_control.lower()
    if "no-store" in directives or "no-cache" in directives:
        return 0
    match = _MAX_AGE.search(cache_control)
    return min(int(match.group(1)), MAX_CACHE_SECONDS) if match else 0


def fetch_jwks(url: str) -> tuple[dict[str, Any], int]:
    """GET the JWK Set at `url`: the parsed set and its cache lifetime in seconds.

    Through `bulkops.outbound`: public addresses only, no redirects, a size cap and
    one deadline for the whole response."""
    check_jwks_uri(url)
    try:
        fetched = request(
            "GET",
            url,
            headers={"Accept": "application/json"},
            max_bytes=MAX_JWKS_BYTES,
            timeout=FETCH_TIMEOUT,
        )
    except FetchError as exc:
        raise JwksError(f"Could not fetch the JWKS URL {url}: {exc}.") from None
    if fetched.status != 200:
        redirect = " (a redirect, which is not followed)" if 300 <= fetched.status < 400 else ""
        raise JwksError(
            f"Could not fetch the JWKS URL {url}: it answered HTTP {fetched.status}{redirect}."
        )
    try:
        data = untrusted_json.loads(fetched.body)
    except ValueError:
        raise JwksError(f"The JWKS URL {url} did not return JSON.") from None
    validate_jwks(data)
    return data, cache_seconds(fetched.headers.get("Cache-Control", ""))


def remember_jwks(client: BackendClient, jwks: dict[str, Any], seconds: int, now: datetime) -> None:
    """Cache a fetched set; a kid seen for the first time is recorded as added `now`."""
    CachedJwks.objects.update_or_create(
        client=client,
        defaults={"jwks": jwks, "fetched_at": now, "expires_at": now + timedelta(seconds=seconds)},
    )
    ClientKey.objects.sync(client, jwks, now)


def _client_jwks(client: BackendClient, now: datetime, *, refresh: bool) -> tuple[Any, bool]:
    """The client's key set and whether it was fetched just now."""
    if client.jwks is not None:
        return client.jwks, False
    if not refresh:
        cached = CachedJwks.objects.filter(client=client, expires_at__gt=now).first()
        if cached is not None:
            return cached.jwks, False
    jwks, seconds = fetch_jwks(client.jwks_uri)
    remember_jwks(client, jwks, seconds, now)
    return jwks, True


def _matching_key(jwks: Any, kid: str, algorithm: str) -> dict[str, Any] | None:
    """The one usable key with `kid` whose type fits `algorithm` (spec §7.5 step 4); when
    no key has that kid, the one whose RFC 7638 thumbprint it is."""
    fitting = [
        key
        for key in jwks.get("keys", [])
        if isinstance(key, dict) and KEY_ALGORITHMS.get(key.get("kty", "")) == algorithm
    ]
    matches = [key for key in fitting if key.get("kid") == kid] or [
        key for key in fitting if jwk_thumbprint(key) == kid
    ]
    if len(matches) != 1:
        return None
    if _usability_problem(matches[0], matches[0]["kty"]) or PRIVATE_MEMBERS & matches[0].keys():
        return None
    return matches[0]


def _expired(jwk: dict[str, Any] | None, now: datetime) -> bool:
    expiry = issuer_expiry(jwk) if jwk is not None else None
    return expiry is not None and expiry.at <= now


def verification_key(client: BackendClient, kid: str, algorithm: str, now: datetime) -> jwt.PyJWK:
    """The key that must have signed an assertion; a cached jwks_uri set is refetched
    once when it lacks `kid` or holds it expired, so a client can rotate keys (or renew
    a certificate) without waiting for us. A key past its certificate's notAfter or its
    exp raises KeyExpired."""
    jwks, fresh = _client_jwks(client, now, refresh=False)
    jwk = _matching_key(jwks, kid, algorithm)
    if (jwk is None or _expired(jwk, now)) and not fresh and client.jwks_uri:
        jwks, _ = _client_jwks(client, now, refresh=True)
        jwk = _matching_key(jwks, kid, algorithm)
    if jwk is None:
        raise JwksError(f"The client has no usable {algorithm} key with kid {kid!r}.")
    expiry = issuer_expiry(jwk)
    if expiry is not None and expiry.at <= now:
        raise KeyExpired(
            f"Key {kid!r} expired on {expiry.at:%Y-%m-%d %H:%M:%S} UTC ({expiry.describe()}); "
            "sign with a current key."
        )
    return parsed_key(jwk, algorithm)


def registered_keys(client: BackendClient) -> list[KeyInfo]:
    """What each of the client's keys is good for (inline, or the last fetched set)."""
    if client.jwks is not None:
        return validate_jwks(client.jwks)
    cached = CachedJwks.objects.filter(client=client).first()
    return validate_jwks(cached.jwks) if cached is not None else []
