from __future__ import annotations

import json

from django.conf import settings
from django.db import models

from remotes import crypto
from remotes.target import RemoteTarget


class RemoteServer(models.Model):
    """A Bulk Data server elsewhere (or bulkops itself) that operators export from.

    Our private key for it is stored encrypted (remotes.crypto) and never shown again;
    `public_jwks` is what the operator registers at the remote side.
    """

    class Algorithm(models.TextChoices):
        ES384 = "ES384"
        RS384 = "RS384"

    name = models.SlugField(max_length=64, unique=True, help_text="Used in commands.")
    base_url = models.URLField(max_length=500, help_text="FHIR base URL.")
    token_url = models.URLField(
        max_length=500, blank=True, help_text="Empty: discovered from smart-configuration."
    )
    client_id = models.CharField(max_length=255, help_text="Our client_id at that server.")
    private_key_encrypted = models.TextField(editable=False)
    public_jwks = models.JSONField(editable=False)
    key_algorithm = models.CharField(max_length=8, choices=Algorithm.choices, editable=False)
    scopes = models.TextField(default="system/*.read")
    default_group_id = models.CharField(max_length=64, blank=True)
    verify_tls = models.BooleanField(default=True)
    delete_remote_job = models.BooleanField(
        default=True, help_text="DELETE the remote job once its files are downloaded."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def kid(self) -> str:
        return self.public_jwks["keys"][0]["kid"]

    def set_private_jwk(self, private_jwk: dict) -> None:
        """Store a checked private JWK (remotes.keys) encrypted, and its public half."""
        from remotes.keys import public_jwks

        self.private_key_encrypted = crypto.encrypt(json.dumps(private_jwk))
        self.public_jwks = public_jwks(private_jwk)
        self.key_algorithm = private_jwk["alg"]

    def target(self) -> RemoteTarget:
        return RemoteTarget(
            base_url=self.base_url.rstrip("/"),
            client_id=self.client_id,
            private_jwk=json.loads(crypto.decrypt(self.private_key_encrypted)),
            scope=self.scopes,
            token_url=self.token_url,
            group_id=self.default_group_id,
            verify_tls=self.verify_tls,
        )


class ServerCheck(models.Model):
    """One run of the conformance battery (remotes.checks) against a RemoteServer.

    `results` holds one JSON object per check (name, group, status, summary, redacted
    exchanges and excerpts), appended as the checks finish so the page shows them live.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PASS = "pass"  # noqa: S105 - a check outcome
        WARN = "warn"
        FAIL = "fail"
        ERROR = "error"  # the battery itself could not run

    server = models.ForeignKey(RemoteServer, on_delete=models.CASCADE, related_name="checks")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    results = models.JSONField(default=list)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"check {self.pk} of {self.server}"

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("pass", "warn", "fail", "skip"), 0)
        for result in self.results:
            counts[result["status"]] += 1
        return counts
