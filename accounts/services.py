"""Writes for operators and backend clients: creating, registering, disabling, issuing
tokens. Each records its audit event in the same transaction.

Every write to a backend client checks, here, that the operator making it may manage
clients (a registered key obtains access tokens): console, API and any feature that
registers a client on an operator's behalf go through the same check. `None` as the
operator means the command line, whose users hold the database anyway."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import sessions
from accounts.audit import record_event
from accounts.jwks import JwksError, fetch_jwks, registered_keys, remember_jwks, validate_jwks
from accounts.key_expiry import issuer_expiry
from accounts.models import (
    TOKEN_REQUEST,
    AccessToken,
    ApiToken,
    AuditEvent,
    BackendClient,
    BackendClientGroup,
    ClientKey,
    hash_token,
)
from accounts.oauth import OAuthError
from accounts.roles import MANAGE_CLIENTS, Role, perm
from accounts.store_directory import existing_group_ids
from bulkops.fhir.scopes import BULK_SUBMIT, OPERATION_SCOPES, parse_system_scopes

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def generate_password() -> str:
    return secrets.token_urlsafe(15)


@transaction.atomic
def create_operator(
    *,
    username: str,
    role: str,
    email: str = "",
    created_by: AbstractBaseUser | None = None,
    request: HttpRequest | None = None,
) -> tuple[AbstractUser, str]:
    """Create an operator with a generated password; return the user and the password.

    The password is returned once for the caller to show; only its hash is stored.
    Raises ValidationError by field (username taken or malformed, email, role).
    `created_by` None means the command line.
    """
    if role not in Role.values:
        raise ValidationError(
            {"role": f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."}
        )
    user_model = get_user_model()
    user = user_model(username=username, email=email)
    user.full_clean(exclude=["password"])
    password = generate_password()
    user.set_password(password)
    user.save()
    user.groups.add(Group.objects.get(name=role))
    actor_type, actor = _actor(created_by)
    record_event(
        actor_type=actor_type,
        actor=actor,
        action="operator.created",
        request=request,
        details={"username": username, "role": role},
    )
    return user, password


@transaction.atomic
def reset_operator_password(
    *, user: AbstractBaseUser, admin: AbstractBaseUser | None, request: HttpRequest | None = None
) -> str:
    """Give `user` a new generated password and sign them out everywhere; return the
    password for the caller to show once. `admin` None means the command line.

    Audited with the number of sessions ended, never the password."""
    password = generate_password()
    user.set_password(password)
    user.save(update_fields=["password"])
    ended = sessions.end_all(user)
    actor_type, actor = _actor(admin)
    record_event(
        actor_type=actor_type,
        actor=actor,
        action="operator.password_reset",
        request=request,
        details={"username": user.get_username(), "via": "admin", "sessions_ended": ended},
    )
    return password


def _actor(user: AbstractBaseUser | None) -> tuple[str, str]:
    """Audit actor (type, name) for an operator action; None means the command line."""
    if user is None:
        return AuditEvent.ActorType.SYSTEM, "system"
    return AuditEvent.ActorType.OPERATOR, user.get_username()


def _require_client_manager(user: AbstractBaseUser | None) -> None:
    """PermissionDenied unless `user` may manage backend clients (None: the command line)."""
    if user is not None and not user.has_perm(perm(MANAGE_CLIENTS)):
        raise PermissionDenied


def _require_current_key(jwks: Any) -> None:
    """JwksError unless the set validates and one of its usable keys is still within its
    certificate's notAfter and its exp: a set of ended keys could never sign in."""
    now = timezone.now()
    infos = validate_jwks(jwks)
    usable = [jwk for info, jwk in zip(infos, jwks["keys"], strict=True) if info.algorithm]
    ended = [
        (jwk["kid"], expiry.at)
        for jwk in usable
        if (expiry := issuer_expiry(jwk)) is not None and expiry.at <= now
    ]
    if len(ended) == len(usable):
        listed = ", ".join(f"{kid!r} on {at:%Y-%m-%d}" for kid, at in ended)
        raise JwksError(f"Every usable key has expired ({listed}); submit a current key.")


def _check_keys(jwks: Any, jwks_uri: str | None) -> tuple[dict[str, str], Any, int]:
    """Errors by field, plus the JWK Set fetched from `jwks_uri` and its cache time."""
    if (jwks is None) == (not jwks_uri):
        return (
            {"jwks": "Give an inline JWK Set or a JWKS URL (exactly one)."},
            None,
            0,
        )
    try:
        if jwks is not None:
            _require_current_key(jwks)
            return {}, None, 0
        URLValidator(schemes=["https", "http"])(jwks_uri)
        fetched, seconds = fetch_jwks(str(jwks_uri))
        _require_current_key(fetched)
    except ValidationError:
        return {"jwks_uri": f"{jwks_uri!r} is not a URL."}, None, 0
    except JwksError as exc:
        return {"jwks" if jwks is not None else "jwks_uri": str(exc)}, None, 0
    return {}, fetched, seconds


def _check_scopes(scopes: str) -> str:
    """Why `scopes` cannot be registered, or ""."""
    if not scopes.split():
        return "Give at least one scope, e.g. system/*.read."
    unusable = [
        s for s in scopes.split() if not parse_system_scopes(s) and s not in OPERATION_SCOPES
    ]
    if unusable:
        return (
            f"Not a system/ resource scope: {', '.join(unusable)}. Use SMART v1 "
            "(system/Patient.read, system/*.read) or v2 (system/Patient.rs, system/*.cruds), "
            f"or {BULK_SUBMIT} for a client that sends $bulk-submit."
        )
    return ""


def _check_groups(group_ids: Sequence[str]) -> str:
    """Why `group_ids` cannot be bound to a client, or ""."""
    if bad_groups := [g for g in group_ids if not FHIR_ID.fullmatch(g)]:
        return f"Not a FHIR Group id: {', '.join(bad_groups)}."
    if missing := sorted(set(group_ids) - existing_group_ids(group_ids)):
        return f"No such Group: {', '.join(missing)}."
    return ""


def _scope_text(scopes: str | Sequence[str]) -> str:
    return " ".join(scopes.split() if isinstance(scopes, str) else scopes)


def _check_profile(name: str, scope_text: str, group_ids: Sequence[str]) -> dict[str, str]:
    """Errors by field for a client's name, scopes and bound groups."""
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = "Give the client a name."
    if problem := _check_scopes(scope_text):
        errors["scopes"] = problem
    if problem := _check_groups(group_ids):
        errors["group_ids"] = problem
    return errors


@transaction.atomic
def register_client(
    *,
    name: str,
    jwks: Any = None,
    jwks_uri: str | None = None,
    scopes: str | Sequence[str],
    group_ids: Sequence[str] = (),
    created_by: AbstractBaseUser | None = None,
    request: HttpRequest | None = None,
) -> BackendClient:
    """Register a backend client with its public keys, allowed scopes and bound groups.

    Raises ValidationError (by field) unless the key set has a public RSA ≥ 2048 or EC
    P-384 key for RS384/ES384 and no private key material, a jwks_uri is https (see
    BULKOPS_ALLOW_HTTP_JWKS) and reachable, and every scope is a system/ scope.
    PermissionDenied unless `created_by` may manage clients.
    """
    _require_client_manager(created_by)
    scope_text = _scope_text(scopes)
    errors, fetched, cache_for = _check_keys(jwks, jwks_uri)
    errors.update(_check_profile(name, scope_text, group_ids))
    if errors:
        raise ValidationError(errors)
    client = BackendClient.objects.create(
        name=name.strip(),
        jwks=jwks,
        jwks_uri=jwks_uri or "",
        scopes=scope_text,
        created_by=created_by,
    )
    BackendClientGroup.objects.bulk_create(
        BackendClientGroup(client=client, group_id=g) for g in dict.fromkeys(group_ids)
    )
    now = timezone.now()
    if fetched is not None:
        remember_jwks(client, fetched, cache_for, now)
    else:
        ClientKey.objects.sync(client, jwks, now)
    actor_type, actor = _actor(created_by)
    record_event(
        actor_type=actor_type,
        actor=actor,
        action="client.registered",
        request=request,
        details={
            "client_id": client.client_id,
            "name": client.name,
            "scopes": scope_text,
            "groups": list(dict.fromkeys(group_ids)),
            "jwks_uri": client.jwks_uri,
            "kids": [info.kid for info in registered_keys(client)],
        },
    )
    return client


def _locked_client(client_id: str, actor: AbstractBaseUser | None) -> BackendClient:
    """The client to change, locked, once `actor` is known to be allowed to change it."""
    _require_client_manager(actor)
    client = BackendClient.objects.select_for_update().filter(client_id=client_id).first()
    if client is None:
        raise ValidationError({"client_id": f"No client has client_id {client_id!r}."})
    return client


def record_change(
    actor: AbstractBaseUser | None,
    action: str,
    *,
    request: HttpRequest | None = None,
    **details: Any,
) -> None:
    """Audit one change, naming the operator who made it (None: the command line)."""
    actor_type, actor_name = _actor(actor)
    record_event(
        actor_type=actor_type, actor=actor_name, action=action, request=request, details=details
    )


def _record_client_change(
    actor: AbstractBaseUser | None,
    action: str,
    client: BackendClient,
    request: HttpRequest | None,
    **details: Any,
) -> None:
    """Audit one change to a backend client, naming who made it and from where."""
    record_change(actor, action, request=request, client_id=client.client_id, **details)


@transaction.atomic
def disable_client(
    *, client_id: str, actor: AbstractBaseUser | None, request: HttpRequest | None = None
) -> BackendClient:
    """Disable a client: its tokens stop working at once and it gets no new ones."""
    client = _locked_client(client_id, actor)
    client.status = BackendClient.Status.DISABLED
    client.save(update_fields=["status", "updated_at"])
    revoked, _ = AccessToken.objects.filter(client=client).delete()
    _record_client_change(actor, "client.disabled", client, request, revoked_tokens=revoked)
    return client


@transaction.atomic
def update_client(
    *,
    client_id: str,
    name: str,
    scopes: str | Sequence[str],
    group_ids: Sequence[str],
    actor: AbstractBaseUser | None,
    request: HttpRequest | None = None,
) -> BackendClient:
    """Change a client's name, scopes and bound groups, checked as at registration.

    Its access tokens are revoked, so narrower scopes or groups apply at once; the
    client simply requests a new token.
    """
    client = _locked_client(client_id, actor)
    scope_text = _scope_text(scopes)
    if errors := _check_profile(name, scope_text, group_ids):
        raise ValidationError(errors)
    before = {
        "name": client.name,
        "scopes": client.scopes,
        "groups": sorted(client.bound_groups.values_list("group_id", flat=True)),
    }
    client.name, client.scopes = name.strip(), scope_text
    client.save(update_fields=["name", "scopes", "updated_at"])
    client.bound_groups.all().delete()
    BackendClientGroup.objects.bulk_create(
        BackendClientGroup(client=client, group_id=g) for g in dict.fromkeys(group_ids)
    )
    revoked, _ = AccessToken.objects.filter(client=client).delete()
    after = {"name": client.name, "scopes": scope_text, "groups": sorted(set(group_ids))}
    _record_client_change(
        actor,
        "client.updated",
        client,
        request,
        changed={k: [before[k], after[k]] for k in after if before[k] != after[k]},
        revoked_tokens=revoked,
    )
    return client


def _inline_keys(client: BackendClient) -> list[dict[str, Any]]:
    if client.jwks is None:
        raise ValidationError(
            {"jwk": "This client publishes its keys at its JWKS URL; rotate them there."}
        )
    return list(client.jwks["keys"])


def _save_inline_keys(client: BackendClient, keys: list[dict[str, Any]]) -> None:
    """Store a changed inline key set and date its new keys (the rotation policy's clock)."""
    client.jwks = {**client.jwks, "keys": keys}
    client.save(update_fields=["jwks", "updated_at"])
    ClientKey.objects.sync(client, client.jwks, timezone.now())


@transaction.atomic
def add_client_key(
    *,
    client_id: str,
    jwk: Any,
    actor: AbstractBaseUser | None,
    request: HttpRequest | None = None,
) -> BackendClient:
    """Add a public key to an inline JWK Set (rotation: add the new key, then retire the
    old kid once the client signs with the new one)."""
    client = _locked_client(client_id, actor)
    keys = _inline_keys(client)
    try:
        (info,) = validate_jwks({"keys": [jwk]})
        _require_current_key({"keys": [jwk]})
        validate_jwks({"keys": [*keys, jwk]})
    except JwksError as error:
        raise ValidationError({"jwk": str(error)}) from None
    _save_inline_keys(client, [*keys, jwk])
    _record_client_change(actor, "client.key_added", client, request, kid=info.kid)
    return client


@transaction.atomic
def retire_client_key(
    *,
    client_id: str,
    kid: str,
    actor: AbstractBaseUser | None,
    request: HttpRequest | None = None,
) -> BackendClient:
    """Remove key `kid` from an inline JWK Set; the last usable key cannot be retired."""
    client = _locked_client(client_id, actor)
    keys = _inline_keys(client)
    remaining = [key for key in keys if key.get("kid") != kid]
    if len(remaining) == len(keys):
        raise ValidationError({"kid": f"This client has no key with kid {kid!r}."})
    try:
        validate_jwks({"keys": remaining})
    except JwksError:
        raise ValidationError(
            {"kid": f"Retiring {kid!r} would leave no usable key; add the new key first."}
        ) from None
    _save_inline_keys(client, remaining)
    _record_client_change(actor, "client.key_retired", client, request, kid=kid)
    return client


@transaction.atomic
def enable_client(
    *, client_id: str, actor: AbstractBaseUser | None, request: HttpRequest | None = None
) -> BackendClient:
    """Enable a disabled client again; it must request new tokens (old ones were revoked)."""
    client = _locked_client(client_id, actor)
    client.status = BackendClient.Status.ACTIVE
    client.save(update_fields=["status", "updated_at"])
    _record_client_change(actor, "client.enabled", client, request)
    return client


@dataclass(frozen=True)
class IssuedToken:
    """A new access token; `raw` is handed to the client once and never stored."""

    raw: str
    token: AccessToken
    lifetime: int


@transaction.atomic(savepoint=False)  # in the token request's transaction: no SAVEPOINT
def issue_access_token(
    *,
    client: BackendClient,
    scopes: Sequence[str],
    now: datetime,
    request: HttpRequest | None = None,
) -> IssuedToken:
    """Issue a short-lived opaque bearer token for already-granted `scopes` and record
    the successful token request (spec §7.5 step 11; no refresh token)."""
    lifetime = settings.BULKOPS_ACCESS_TOKEN_LIFETIME
    raw = secrets.token_urlsafe(32)
    token = AccessToken.objects.create(
        token_hash=hash_token(raw),
        client=client,
        scopes=" ".join(scopes),
        expires_at=now + timedelta(seconds=lifetime),
    )
    record_event(
        actor_type=AuditEvent.ActorType.CLIENT,
        actor=client.client_id,
        action=TOKEN_REQUEST,
        reason="issued",
        request=request,
        details={"scope": token.scopes, "expires_in": lifetime},
    )
    return IssuedToken(raw, token, lifetime)


def refuse_token_request(
    *, claimed_client_id: str, signed: bool, error: OAuthError, request: HttpRequest, scope: str
) -> AuditEvent:
    """Record a refused token request under the client it named: as that client when
    the client's own key `signed` it, as an unverified actor otherwise. These rows drive
    rate limiting (accounts/throttle.py), which counts only signed ones per client."""
    return record_event(
        actor_type=AuditEvent.ActorType.CLIENT if signed else AuditEvent.ActorType.UNVERIFIED,
        actor=claimed_client_id,
        action=TOKEN_REQUEST,
        outcome=AuditEvent.Outcome.FAILURE,
        reason=error.reason,
        request=request,
        details={"error": error.error, "scope": scope[:500]},
    )


@dataclass(frozen=True)
class IssuedApiToken:
    """A new operator API token; `raw` is shown once and never stored or logged."""

    raw: str
    token: ApiToken


API_TOKEN_PREFIX_LENGTH = 8


@transaction.atomic
def create_api_token(
    *, user: AbstractBaseUser, name: str, request: HttpRequest | None = None
) -> IssuedApiToken:
    """Create a personal API token for `user`; the caller shows `raw` once.

    Raises ValidationError by field when the name is empty or too long.
    """
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the token a name, e.g. the script that uses it."})
    if len(name) > ApiToken._meta.get_field("name").max_length:
        raise ValidationError({"name": "Keep the name under 100 characters."})
    raw = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=raw[:API_TOKEN_PREFIX_LENGTH], token_hash=hash_token(raw)
    )
    record_event(
        actor_type=AuditEvent.ActorType.OPERATOR,
        actor=user.get_username(),
        action="api_token.created",
        request=request,
        details={"token": token.pk, "name": name, "prefix": token.prefix},
    )
    return IssuedApiToken(raw, token)


@transaction.atomic
def revoke_api_token(
    *, user: AbstractBaseUser, token_id: int, request: HttpRequest | None = None
) -> ApiToken:
    """Revoke one of `user`'s own tokens; it stops authenticating at once.

    Another operator's token is reported as missing, so ids leak nothing.
    """
    token = (
        ApiToken.objects.select_for_update()
        .filter(pk=token_id, user=user, revoked_at__isnull=True)
        .first()
    )
    if token is None:
        raise ValidationError({"token": f"You have no active API token {token_id}."})
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    record_event(
        actor_type=AuditEvent.ActorType.OPERATOR,
        actor=user.get_username(),
        action="api_token.revoked",
        request=request,
        details={"token": token.pk, "name": token.name, "prefix": token.prefix},
    )
    return token
