from __future__ import annotations

import hashlib
import secrets
import string
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models

from accounts.roles import PERMISSIONS
from bulkops.fhir.scopes import readable_types


class ConsolePermissions(models.Model):  # noqa: DJ008 - never instantiated
    """Holds the console's global permissions; it has no table and no rows."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = PERMISSIONS


# AuditEvent.action of every token request, granted or refused.
TOKEN_REQUEST = "token.request"  # noqa: S105 - an action name, not a secret
# AuditEvent.Outcome.FAILURE and ActorType.CLIENT, which the class's Meta cannot name.
FAILURE = "failure"
CLIENT = "client"


class AuditEvent(models.Model):
    """One append-only line of who did what. Never updated, never deleted by bulkops.

    `actor` is an operator's username, a backend client's client_id, or, with actor type
    `unverified`, the `iss` of a refused assertion that no key of that client signed;
    secrets (tokens, assertions, keys) are never stored.
    """

    class ActorType(models.TextChoices):
        OPERATOR = "operator"
        CLIENT = CLIENT
        # Named a client (an assertion's iss) without proving to be it.
        UNVERIFIED = "unverified"
        SYSTEM = "system"

    class Outcome(models.TextChoices):
        SUCCESS = "success"
        FAILURE = FAILURE

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    reason = models.CharField(max_length=255, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["actor", "-created_at"], name="audit_actor_time"),
            models.Index(fields=["action", "-created_at"], name="audit_action_time"),
            models.Index(fields=["ip_address", "-created_at"], name="audit_ip_time"),
            # Rate limiting counts a client's and an address's recent failed token
            # requests on every token request (accounts/throttle.py). Indexes of the
            # failures alone reach them without visiting the many successful requests,
            # and recording a success does not write to them. A client's count is of
            # the requests its own key signed only.
            models.Index(
                fields=["actor", "created_at"],
                condition=models.Q(action=TOKEN_REQUEST, outcome=FAILURE, actor_type=CLIENT),
                name="audit_failed_token_actor",
            ),
            models.Index(
                fields=["ip_address", "created_at"],
                condition=models.Q(action=TOKEN_REQUEST, outcome=FAILURE),
                name="audit_failed_token_ip",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.outcome}"


CLIENT_ID_ALPHABET = string.ascii_letters + string.digits


def new_client_id() -> str:
    """A random client_id of letters and digits (190 bits); it is public (the assertion's
    `iss`). No `-` or `_`: an id starting with `-` reads as an option on a command line
    (`bulk_export --client-id -x…`, `disable_client -x…`)."""
    return "".join(secrets.choice(CLIENT_ID_ALPHABET) for _ in range(32))


class BackendClient(models.Model):
    """A SMART Backend Services client: who it is, its public keys, what it may read.

    Exactly one of `jwks` (an inline public JWK Set) and `jwks_uri` is set (spec §7.2).
    """

    class Status(models.TextChoices):
        ACTIVE = "active"
        DISABLED = "disabled"

    name = models.CharField(max_length=200)
    client_id = models.CharField(max_length=64, unique=True, default=new_client_id, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    jwks = models.JSONField(null=True, blank=True)
    jwks_uri = models.URLField(max_length=500, blank=True)
    scopes = models.TextField(help_text="Allowed SMART scopes, space-separated.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    (models.Q(jwks__isnull=False) & models.Q(jwks_uri=""))
                    | (models.Q(jwks__isnull=True) & ~models.Q(jwks_uri=""))
                ),
                name="client_one_key_source",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def exports_anything(self) -> bool:
        """Whether its registered scopes let it read, so export, any resource type."""
        access = readable_types(self.scopes.split())
        return access.all_types or bool(access.types)


class BackendClientGroup(models.Model):
    """A FHIR Group (logical id) a client is bound to: it may export only its groups."""

    client = models.ForeignKey(BackendClient, on_delete=models.CASCADE, related_name="bound_groups")
    group_id = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "group_id"], name="client_group_unique")
        ]

    def __str__(self) -> str:
        return f"{self.client.client_id} → Group/{self.group_id}"


class ClientKeyQuerySet(models.QuerySet["ClientKey"]):
    def sync(self, client: BackendClient, jwks: Any, now: datetime) -> None:
        """Match the records to the kids of `jwks`: new kids are added `now`, kids no
        longer in the set are forgotten, kept kids keep their date."""
        keys = jwks.get("keys", [])
        kids = {key["kid"] for key in keys if isinstance(key, dict) and "kid" in key}
        self.filter(client=client).exclude(kid__in=kids).delete()
        known = set(self.filter(client=client).values_list("kid", flat=True))
        self.bulk_create(ClientKey(client=client, kid=kid, added_at=now) for kid in kids - known)


class ClientKey(models.Model):
    """When bulkops first held one of a client's keys: the start of the rotation policy's
    clock (accounts/key_expiry.py). Inline keys are recorded by accounts.services as
    they are registered, added or retired; keys behind a jwks_uri when a fetched set
    first shows them."""

    client = models.ForeignKey(BackendClient, on_delete=models.CASCADE, related_name="key_records")
    kid = models.CharField(max_length=255)
    added_at = models.DateTimeField()

    objects = ClientKeyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "kid"], name="client_key_once")]

    def __str__(self) -> str:
        return f"{self.client_id}:{self.kid} since {self.added_at:%Y-%m-%d}"


def hash_token(raw: str) -> str:
    """What is stored for a token: its SHA-256, so a database leak leaks no token."""
    return hashlib.sha256(raw.encode()).hexdigest()


class AccessTokenQuerySet(models.QuerySet["AccessToken"]):
    def usable(self, now: datetime) -> AccessTokenQuerySet:
        """Unexpired tokens of active clients: disabling a client stops them at once."""
        return self.filter(expires_at__gt=now, client__status=BackendClient.Status.ACTIVE)


class AccessToken(models.Model):
    """An issued bearer token. Only the SHA-256 of the random token is stored."""

    token_hash = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey(BackendClient, on_delete=models.CASCADE, related_name="tokens")
    scopes = models.TextField()
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AccessTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return f"token of {self.client.client_id} until {self.expires_at:%Y-%m-%d %H:%M:%S}"

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()


class UsedAssertion(models.Model):
    """A client assertion's `jti`, kept until the assertion could no longer be accepted,
    so a replayed assertion is refused (spec §7.5 step 8)."""

    client = models.ForeignKey(BackendClient, on_delete=models.CASCADE)
    jti = models.CharField(max_length=255)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "jti"], name="assertion_jti_once")]

    def __str__(self) -> str:
        return f"{self.client_id}:{self.jti}"


class CachedJwks(models.Model):
    """The last JWK Set fetched from a client's jwks_uri, usable until `expires_at`
    (never later than its Cache-Control allows, spec §7.2). Shared by every process."""

    client = models.OneToOneField(
        BackendClient, on_delete=models.CASCADE, related_name="cached_jwks"
    )
    jwks = models.JSONField()
    fetched_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"JWKS of {self.client_id} until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        """Tokens not revoked, whose operator can still log in."""
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiToken(models.Model):
    """An operator's personal token for the operator JSON API (`Authorization: Token …`).

    The raw token is shown once when created; only its SHA-256 is stored, with a short
    non-secret `prefix` so the operator can tell their tokens apart. A token acts with
    its operator's current roles, so removing a role takes effect at once.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) of {self.user_id}"


class OperatorProfile(models.Model):
    """An operator's own console settings. An operator without a row, or with an empty
    field, has the site's default (`time_zone`: settings.TIME_ZONE)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="operator_profile",
    )
    time_zone = models.CharField(
        max_length=64, blank=True, help_text="IANA name the console shows times in."
    )

    def __str__(self) -> str:
        return f"profile of {self.user_id}"
