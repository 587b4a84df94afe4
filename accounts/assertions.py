"""Authenticating a backend client by its signed JWT assertion (spec §7.4, §7.5).

Every failure here is `invalid_client` (spec §7.5 step 9) with a description that says
what to fix; only a client that proved who it is learns that it is disabled
(`unauthorized_client`, RFC 6749: "the authenticated client is not authorized").

It runs in two steps. `verify_signature` finds which registered client's key signed the
assertion and that it has not expired; until then, a request only names a client_id, as
anyone can, or resends an old assertion. Then `accept_assertion` checks what that client
signed. The token endpoint counts refusals of the second step against the client and
refusals of the first only against the caller's address (accounts/throttle.py), so junk
naming a client, or an old assertion of its, cannot lock that client out.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from django.db import IntegrityError

from accounts.audit import storable
from accounts.jwks import JwksError, KeyExpired, verification_key
from accounts.models import BackendClient, UsedAssertion
from accounts.oauth import UNAUTHORIZED_CLIENT, OAuthError, invalid_client
from bulkops.fhir.smart import SIGNING_ALGORITHMS

CLOCK_SKEW = 60  # seconds either way (spec §7.5 step 7)
MAX_LIFETIME = 300  # an assertion's exp may be at most this far ahead
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "jti"]
# An RS384/ES384 assertion is under 1 KiB; anything far longer is refused unparsed.
MAX_ASSERTION_CHARS = 8 * 1024
# Verifies signatures only: an assertion's claims are read once (UnverifiedAssertion).
_JWS = jwt.PyJWS()


@dataclass(frozen=True)
class UnverifiedAssertion:
    """A client_assertion as sent, its header and claims read once per token request
    (`None` when it is not a JWT or is oversized): the audit trail and the rate limit
    need the claimed `iss` before anything is verified, and verification needs the
    header, so one parse serves all three."""

    token: str
    header: dict[str, Any] | None
    claims: dict[str, Any] | None

    @classmethod
    def read(cls, token: str) -> UnverifiedAssertion:
        if len(token) > MAX_ASSERTION_CHARS:
            return cls(token, None, None)
        try:
            parts = jwt.api_jwt.decode_complete(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return cls(token, None, None)
        return cls(token, parts["header"], parts["payload"])

    @property
    def issuer(self) -> str:
        """The unverified `iss`, as the audit trail stores it (so rate-limit counts find
        the rows it wrote); "" if there is none."""
        issuer = (self.claims or {}).get("iss")
        return storable(issuer) if isinstance(issuer, str) else ""


@dataclass(frozen=True)
class SignedAssertion:
    """An unexpired assertion whose signature verifies with one of `client`'s keys.

    Whatever else is wrong with it is the key holder's doing, so from here on a refusal
    counts against the client (accounts/throttle.py). Before this point the request only
    names a client_id, which anyone can do: its refusal counts against its address.
    """

    client: BackendClient
    claims: dict[str, Any]


@dataclass(frozen=True)
class VerifiedAssertion:
    """A client's valid assertion whose `jti` is not spent yet (see `spend_jti`)."""

    client: BackendClient
    jti: str
    remember_until: datetime  # when the assertion could no longer be accepted anyway


def verify_signature(
    *, assertion: UnverifiedAssertion, client_id: str | None, now: datetime
) -> SignedAssertion:
    """The registered client whose key signed `assertion`, which has not expired (steps
    2–5, 7), or OAuthError."""
    header, claims = _parse(assertion)
    algorithm = header["alg"]
    client = _claimed_client(claims, client_id)
    jku = header.get("jku")
    if jku is not None and (not client.jwks_uri or jku != client.jwks_uri):
        raise invalid_client("jku_mismatch", "The jku header is not this client's JWKS URL.")
    try:
        key = verification_key(client, header["kid"], algorithm, now)
    except KeyExpired as exc:
        raise invalid_client("key_expired", str(exc)) from None
    except JwksError as exc:
        raise invalid_client("no_key", str(exc)) from None
    _check_signature(assertion.token, key, algorithm)
    _check_unexpired(claims, now)
    return SignedAssertion(client, claims)


def accept_assertion(
    signed: SignedAssertion, *, token_url: str, now: datetime
) -> VerifiedAssertion:
    """The signed assertion's other claims (steps 6–7) and its client's status: a
    VerifiedAssertion, or OAuthError.

    Reads only: the caller spends the `jti` with `spend_jti` in the transaction that
    issues the token, so a token request commits once.
    """
    claims = signed.claims
    _check_claims(claims, token_url)
    exp = _check_times(claims, now)
    if not signed.client.is_active:
        raise OAuthError(UNAUTHORIZED_CLIENT, "This client is disabled.", "client_disabled")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > 255 or "\x00" in jti:
        raise invalid_client(
            "bad_jti", "jti must be a non-empty string of at most 255 chars, without NUL."
        )
    return VerifiedAssertion(signed.client, jti, exp + timedelta(seconds=CLOCK_SKEW))


def _parse(assertion: UnverifiedAssertion) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and unverified claims of a well-formed RS384/ES384 JWT (step 2)."""
    if len(assertion.token) > MAX_ASSERTION_CHARS:
        raise invalid_client(
            "oversized_assertion",
            f"The client_assertion is longer than {MAX_ASSERTION_CHARS} characters.",
        )
    header, claims = assertion.header, assertion.claims
    if header is None or claims is None:
        raise invalid_client("malformed_assertion", "The client_assertion is not a JWT.")
    if str(header.get("typ", "")).upper() != "JWT":
        raise invalid_client("bad_typ", 'The assertion header needs "typ": "JWT".')
    if header.get("alg") not in SIGNING_ALGORITHMS:
        raise invalid_client(
            "bad_alg", f"alg {header.get('alg')!r} is not accepted; sign with RS384 or ES384."
        )
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise invalid_client("missing_kid", "The assertion header needs a kid.")
    return header, claims


def _claimed_client(claims: dict[str, Any], client_id: str | None) -> BackendClient:
    """The registered client named by `iss` = `sub` (= `client_id` if sent), step 3."""
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise invalid_client("missing_iss", "The assertion needs iss (your client_id).")
    if claims.get("sub") != issuer:
        raise invalid_client("sub_not_iss", "The assertion's sub must equal its iss.")
    if client_id is not None and client_id != issuer:
        raise invalid_client("client_id_mismatch", "client_id does not match the assertion.")
    # A NUL cannot be in a client_id, and PostgreSQL refuses it even in a query.
    if "\x00" not in issuer:
        with suppress(BackendClient.DoesNotExist):
            return BackendClient.objects.get(client_id=issuer)
    raise invalid_client("unknown_client", "No client is registered with this iss.")


def _check_signature(assertion: str, key: jwt.PyJWK, algorithm: str) -> None:
    """The signature alone (step 5); the claims it covers are checked by `_check_claims`
    once it has verified."""
    try:
        _JWS.decode_complete(assertion, key=key, algorithms=[algorithm])
    except jwt.InvalidSignatureError:
        raise invalid_client(
            "bad_signature", "The assertion's signature does not verify."
        ) from None
    except jwt.InvalidTokenError as exc:
        raise invalid_client("invalid_assertion", f"The assertion is invalid: {exc}.") from None


def _check_unexpired(claims: dict[str, Any], now: datetime) -> None:
    """`exp` not past, with skew (step 7). Checked with the signature: an expired
    assertion proves only that its client signed it once, and whoever has seen it could
    send it again, so refusing one must not count against the client. A missing or
    unreadable `exp` is refused by `_check_times`."""
    exp = claims.get("exp")
    past = (now - timedelta(seconds=CLOCK_SKEW)).timestamp()
    if isinstance(exp, int | float) and not isinstance(exp, bool) and exp < past:
        raise invalid_client("expired", "The assertion has expired.")


def _check_claims(claims: dict[str, Any], token_url: str) -> None:
    """Required claims present (null counts as missing) and `aud` naming this endpoint,
    as one string or in a list (step 6); times are `_check_times`' part."""
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            raise invalid_client(f"missing_{name}", f"The assertion needs {name}.")
    audience = claims["aud"]
    if token_url not in (audience if isinstance(audience, list) else [audience]):
        raise invalid_client("wrong_aud", f"The assertion's aud must be {token_url}.")


def _instant(claims: dict[str, Any], name: str) -> datetime | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_client(f"bad_{name}", f"{name} must be a number of seconds since 1970.")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):  # NaN, ±inf, before year 1 or after 9999
        raise invalid_client(f"bad_{name}", f"{name} is not a time bulkops can read.") from None


def _check_times(claims: dict[str, Any], now: datetime) -> datetime:
    """`exp` readable and ≤ 5 minutes ahead, `nbf` not future, with skew (step 7; that
    `exp` is not past, `_check_unexpired` has checked)."""
    exp = _instant(claims, "exp")
    if exp is None:
        raise invalid_client("missing_exp", "The assertion needs exp.")
    skew = timedelta(seconds=CLOCK_SKEW)
    if exp > now + timedelta(seconds=MAX_LIFETIME) + skew:
        raise invalid_client("exp_too_far", "The assertion's exp is more than 5 minutes ahead.")
    nbf = _instant(claims, "nbf")
    if nbf is not None and nbf > now + skew:
        raise invalid_client("not_yet_valid", "The assertion's nbf is in the future.")
    return exp


def spend_jti(assertion: VerifiedAssertion) -> None:
    """Remember the assertion's `jti` until it expires, or refuse a replay (step 8).

    Call inside the transaction that issues the token: a refusal rolls it back, so no
    savepoint is needed. Expired rows are pruned by `prune_used_assertions`, not here.
    """
    try:
        UsedAssertion.objects.create(
            client=assertion.client, jti=assertion.jti, expires_at=assertion.remember_until
        )
    except IntegrityError:
        raise invalid_client("replayed_jti", "This assertion's jti was already used.") from None


def prune_used_assertions(now: datetime) -> int:
    """Forget jtis of assertions that have expired (a periodic task runs this)."""
    deleted, _ = UsedAssertion.objects.filter(expires_at__lte=now).delete()
    return deleted
