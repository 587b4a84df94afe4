from __future__ import annotations

from django.db import models

from accounts.roles import PERMISSIONS


class ConsolePermissions(models.Model):  # noqa: DJ008 - never instantiated
    """Holds the console's global permissions; it has no table and no rows."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = PERMISSIONS


class AuditEvent(models.Model):
    """One append-only line of who did what. Never updated, never deleted by bulkops.

    `actor` is an operator's username, a backend client's client_id, or the unverified
    `iss` of a rejected assertion; secrets (tokens, assertions, keys) are never stored.
    """

    class ActorType(models.TextChoices):
        OPERATOR = "operator"
        CLIENT = "client"
        SYSTEM = "system"

    class Outcome(models.TextChoices):
        SUCCESS = "success"
        FAILURE = "failure"

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
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.outcome}"
