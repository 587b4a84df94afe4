"""The parts every conformance check shares: its result, the recorder that gives each
check its own redacted exchange log, and the facts one check hands to the next."""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import httpx

from bulkops import untrusted_json
from exports.bulk_client import Exchange, HttpResult, http
from remotes.target import RemoteTarget

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
EXCERPT_CHARS = 600
# Keys whose values work as credentials: never kept in evidence.
SECRET_KEYS = frozenset({"access_token", "refresh_token", "id_token", "client_assertion"})
# Why a later check is skipped when an earlier one established nothing (and gave no
# reason of its own).
MISSING = {
    "token_url": "no token endpoint was found.",
    "access_token": "no access token was obtained.",
    "status_url": "no status URL was obtained.",
    "manifest": "no manifest was obtained.",
    "files": "no file was downloaded.",
    "export_v4": "the server does not declare export-v4 (Bulk Data 4) in its CapabilityStatement.",
    "v4_run": "no v4 export completed.",
}


class Skip(Exception):  # noqa: N818 - reads as `raise Skip("why")`
    """A prerequisite is missing; the message says which earlier check it came from."""


@dataclass
class CheckResult:
    name: str
    group: str
    status: str
    summary: str
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    excerpts: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: "REDACTED" if key in SECRET_KEYS else redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    return value


def excerpt_of(body: bytes) -> str:
    """A short, credential-free look at a response body."""
    try:
        text = json.dumps(redact_json(untrusted_json.loads(body)), indent=1)
    except ValueError:
        text = body.decode("utf-8", "replace")
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + " …"


class Recorder:
    """What one check saw and concluded: its exchanges, excerpts, problems and notes
    (facts worth telling that are no problem, such as an error the spec lets a client
    retry)."""

    def __init__(self, target: RemoteTarget) -> None:
        self.target = target
        self.exchanges: list[Exchange] = []
        self.excerpts: list[dict[str, str]] = []
        self.problems: list[tuple[str, str]] = []
        self.notes: list[str] = []

    def http(self, method: str, url: str, **kwargs: Any) -> HttpResult:
        return http(
            method,
            url,
            verify_tls=self.target.verify_tls,
            on_exchange=self.exchanges.append,
            timeout=30,
            **kwargs,
        )

    def excerpt(self, label: str, body: bytes) -> None:
        self.excerpts.append({"label": label, "text": excerpt_of(body)})

    def fail(self, message: str) -> None:
        self.problems.append((FAIL, message))

    def warn(self, message: str) -> None:
        self.problems.append((WARN, message))

    def note(self, message: str) -> None:
        self.notes.append(message)

    def result(self, name: str, group: str, passed: str) -> CheckResult:
        fails = [text for status, text in self.problems if status == FAIL]
        warns = [text for status, text in self.problems if status == WARN]
        status, summary = (FAIL, fails) if fails else (WARN, warns) if warns else (PASS, [passed])
        return CheckResult(
            name=name,
            group=group,
            status=status,
            summary=" ".join([*summary, *self.notes]),
            exchanges=[dataclasses.asdict(exchange) for exchange in self.exchanges],
            excerpts=self.excerpts,
        )


@dataclass
class Facts:
    """Learnt by earlier checks, needed by later ones. Empty means "not established"."""

    token_url: str = ""
    access_token: str = field(default="", repr=False)
    status_url: str = ""
    manifest: dict[str, Any] | None = None
    completion_headers: httpx.Headers = field(default_factory=httpx.Headers)
    files: list[dict[str, Any]] = field(default_factory=list)  # per downloaded output file
    export_v4: bool = False  # the CapabilityStatement declares export-v4
    v4_run: Any = None  # what the v4 kick-off check saw (remotes.checks.v4.V4Run)
    reasons: dict[str, str] = field(default_factory=dict)

    def need(self, fact: str) -> Any:
        value = getattr(self, fact)
        if not value:
            raise Skip(self.reasons.get(fact) or MISSING[fact])
        return value


def media_type(headers: httpx.Headers) -> str:
    return headers.get("Content-Type", "").split(";")[0].strip().lower()


def is_absolute(url: Any) -> bool:
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    return bool(parts and parts.scheme in ("http", "https") and parts.netloc)


def parse_json(recorder: Recorder, result: HttpResult, what: str) -> Any:
    """The JSON body, or None after recording why it is not usable."""
    try:
        return result.json()
    except ValueError:
        recorder.fail(f"The {what} is not JSON.")
        return None
