from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.db import models

from accounts.roles import MANAGE_CLIENTS, RUN_EXPORTS
from bulkops.signing_keys import public_jwks
from remotes import crypto
from remotes.target import RemoteTarget
from remotes.token_destination import token_destination_problem

CLIENT_ID_MAX_LENGTH = 4096


class RemoteServer(models.Model):
    """A Bulk Data server elsewhere (or bulkops itself) that operators export from.

    Our private key for it is stored encrypted (remotes.crypto) and never shown again;
    `public_jwks` is what the operator registers at the remote side, pasted or, while
    `publish_jwks` is on, fetched by the remote from /jwks/<jwks_id>.json
    (remotes.public_jwks).

    A token endpoint on another origin than the base URL is used only once an admin
    confirmed it for exactly this pair of URLs (remotes.token_destination); the
    `confirmed_*` fields hold that confirmation, voided when either URL changes.
    """

    class Algorithm(models.TextChoices):
        ES384 = "ES384"
        RS384 = "RS384"

    name = models.SlugField(max_length=64, unique=True, help_text="Used in commands.")
    base_url = models.URLField(max_length=500, help_text="FHIR base URL.")
    token_url = models.URLField(
        max_length=500, blank=True, help_text="Empty: discovered from smart-configuration."
    )
    # Servers choose their client ids: some issue a signed token of several hundred
    # characters (the SMART reference server: 557). The limit only bounds the input.
    # Empty until the remote has registered our public key set and issued one.
    client_id = models.CharField(
        max_length=CLIENT_ID_MAX_LENGTH, blank=True, help_text="Our client_id at that server."
    )
    private_key_encrypted = models.TextField(editable=False)
    public_jwks = models.JSONField(editable=False)
    # The public key set's URL names this random id, not the server: it stays the same
    # when the key is replaced (the remote refetches it), and reveals nothing about
    # which or how many remotes there are.
    jwks_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    publish_jwks = models.BooleanField(
        default=True,
        editable=False,
        help_text="Serve the public key set at its URL without sign-in (admins switch it).",
    )
    key_algorithm = models.CharField(max_length=8, choices=Algorithm.choices, editable=False)
    scopes = models.TextField(default="system/*.read")
    default_group_id = models.CharField(max_length=64, blank=True)
    discovered_token_url = models.URLField(max_length=500, blank=True, editable=False)
    discovery_error = models.TextField(blank=True, editable=False)
    verify_tls = models.BooleanField(default=True)
    delete_remote_job = models.BooleanField(
        default=True, help_text="DELETE the remote job once its files are downloaded."
    )
    local_client = models.ForeignKey(
        "accounts.BackendClient",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        editable=False,
        related_name="+",
        help_text="The backend client registered here for our key (the self-check remote).",
    )
    confirmed_base_url = models.URLField(max_length=500, blank=True, editable=False)
    confirmed_token_url = models.URLField(
        max_length=500,
        blank=True,
        editable=False,
        help_text="A token URL on another origin an admin confirmed for confirmed_base_url.",
    )
    token_url_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        editable=False,
        related_name="+",
    )
    token_url_confirmed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def kid(self) -> str:
        return self.public_jwks["keys"][0]["kid"]

    @property
    def change_permission(self) -> str:
        """What changing this server's URLs, key or existence needs. Whoever may run
        exports may add and change a remote, but a remote whose key is a backend client
        here can obtain this bulkops' own tokens, so it is the client managers'."""
        return MANAGE_CLIENTS if self.local_client_id else RUN_EXPORTS

    @property
    def token_url_in_use(self) -> str:
        """The configured token endpoint, else the one discovery found ("" if none)."""
        return self.token_url or self.discovered_token_url

    @property
    def current_confirmed_token_url(self) -> str:
        """The token URL an admin confirmed, while the base URL is still the one it was
        confirmed for; else ""."""
        return self.confirmed_token_url if self.confirmed_base_url == self.base_url else ""

    def token_url_problem(self) -> str:
        """Why no token will be requested at the token endpoint in use (see
        remotes.token_destination), or "" (also when there is none to judge yet)."""
        if not self.token_url_in_use:
            return ""
        return token_destination_problem(
            self.base_url, self.token_url_in_use, self.current_confirmed_token_url
        )

    @property
    def token_url_confirmed(self) -> bool:
        """An admin's confirmation is what allows the token endpoint in use."""
        return bool(self.current_confirmed_token_url) and (
            self.current_confirmed_token_url == self.token_url_in_use
        )

    def void_stale_confirmation(self) -> tuple[str, str] | None:
        """Forget a confirmation given for other URLs than the current ones; the pair
        (base URL, token URL) it was given for, or None when nothing was voided."""
        if not self.confirmed_token_url or self.token_url_confirmed:
            return None
        voided = (self.confirmed_base_url, self.confirmed_token_url)
        self.confirmed_base_url = self.confirmed_token_url = ""
        self.token_url_confirmed_by, self.token_url_confirmed_at = None, None
        return voided

    def set_private_jwk(self, private_jwk: dict) -> None:
        """Store a checked private JWK (bulkops.signing_keys) encrypted, and its public
        half."""
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
            confirmed_token_url=self.current_confirmed_token_url,
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


class RemoteExport(models.Model):
    """The remote half of an ExportJob run against a RemoteServer.

    The job itself is an ordinary ExportJob without a client, so the console's job
    pages, manifest, file browser and preview serve it unchanged; this row keeps what
    only a remote export has: the remote's status URL, its manifest as received, its
    X-Progress text, per-phase timings and the HTTP exchange log.
    """

    class Phase(models.TextChoices):
        QUEUED = "queued"
        TOKEN = "token"  # noqa: S105 - a phase name
        KICKOFF = "kickoff"
        WAITING = "waiting"
        DOWNLOAD = "download"
        DELETE = "delete"
        DONE = "done"

    job = models.OneToOneField(
        "exports.ExportJob", on_delete=models.CASCADE, related_name="remote_export"
    )
    server = models.ForeignKey(RemoteServer, on_delete=models.PROTECT, related_name="exports")
    kickoff_path = models.CharField(max_length=500)
    kickoff_pairs = models.JSONField(default=list)
    # The Bulk Data version spoken to the remote: 2.0.0 at $export, or the 4.0.0 ballot
    # at $export-v4 (POST only, its manifest model, partial manifests, patient blocks).
    bulk_version = models.CharField(max_length=8, default="2.0.0")
    status_url = models.TextField(blank=True)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.QUEUED)
    progress = models.CharField(max_length=200, blank=True, help_text="The remote's X-Progress.")
    manifest = models.JSONField(null=True, blank=True, help_text="As received.")
    outcomes = models.JSONField(
        default=list, help_text="Issues of the remote's error files: plain text and raw line."
    )
    timings = models.JSONField(default=dict, help_text="Seconds per phase.")
    remote_job_deleted = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.server} export {self.job_id}"


class RemoteExchange(models.Model):
    """One HTTP request of a remote export and its answer, credentials redacted
    (exports.bulk_client.Exchange): the troubleshooting log."""

    export = models.ForeignKey(RemoteExport, on_delete=models.CASCADE, related_name="exchanges")
    method = models.CharField(max_length=8)
    url = models.TextField()
    status = models.PositiveSmallIntegerField()
    request_headers = models.JSONField(default=dict)
    response_headers = models.JSONField(default=dict)
    seconds = models.FloatField()
    answered_at = models.DateTimeField()
    note = models.TextField(blank=True, help_text="What bulkops made of the answer.")

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.method} {self.url} → {self.status}"


class RemoteDownload(models.Model):
    """One file of the remote manifest on its way into our storage.

    Line count, size and SHA-256 live here rather than on ExportFile: they describe a
    transfer from another server, and the ExportFile row (created only once every file
    arrived) stays what local jobs have.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        DISCARDED = "discarded"  # arrived, then removed because the export failed

    export = models.ForeignKey(RemoteExport, on_delete=models.CASCADE, related_name="downloads")
    kind = models.CharField(max_length=16)
    resource_type = models.CharField(max_length=64)
    url = models.TextField(help_text="Redacted.")
    storage_key = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    bytes_done = models.PositiveBigIntegerField(default=0)
    lines = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    file = models.OneToOneField(
        "exports.ExportFile",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="remote_download",
    )

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.storage_key
