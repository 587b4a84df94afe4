"""`check_storage`: prove the configured storage works end to end, or say why not.

The probe does what an export and a client do: write an object, sign a URL for it,
fetch that URL with plain HTTP and no token, delete the object. Each failure is turned
into one sentence an operator can act on.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from django.utils import timezone

from bulkops import outbound
from exports.storage import ExportStorage

PROBE_BODY = b'{"resourceType":"Basic","id":"bulkops-storage-probe"}\n'
MAX_ANSWER_BYTES = 64 * 1024  # the probe object, or the store's XML error document

BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
WRONG_REGION = {
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
    "IllegalLocationConstraintException",
    "301",
}
_XML_CODE = re.compile(rb"<Code>([^<]+)</Code>")
T = TypeVar("T")


class ProbeFailed(Exception):
    def __init__(self, step: str, diagnosis: str) -> None:
        super().__init__(f"{step} failed: {diagnosis}")
        self.step, self.diagnosis = step, diagnosis


@dataclass(frozen=True)
class SettingNames:
    """Where the operator configured what a diagnosis blames, to name in its advice."""

    bucket: str = "BULKOPS_S3_BUCKET"
    region: str = "BULKOPS_S3_REGION"
    endpoint: str = "BULKOPS_S3_ENDPOINT_URL"
    keys: str = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"

    @classmethod
    def of_named(cls, name: str, access_key_env: str, secret_key_env: str) -> SettingNames:
        """A BULKOPS_OUTPUT_STORAGES entry's fields, and the variables it names."""
        where = f"of BULKOPS_OUTPUT_STORAGES storage {name!r}"
        keys = f"{access_key_env} and {secret_key_env}" if access_key_env else cls.keys
        return cls(f"'bucket' {where}", f"'region' {where}", f"'endpoint' {where}", keys)


@dataclass(frozen=True)
class Target:
    """What the operator configured, for messages: bucket and endpoint."""

    bucket: str
    endpoint: str
    names: SettingNames = SettingNames()


def probe_storage(storage: ExportStorage, target: Target, report: Callable[[str], None]) -> None:
    """Run put, presign, get and delete of a probe object; raise ProbeFailed at the first
    step that fails, calling `report` after each step that worked."""
    key = f"bulkops-probe-{uuid.uuid4()}.ndjson"

    def step(name: str, action: Callable[[], T]) -> T:
        try:
            result = action()
        except Exception as error:  # every failure is diagnosed, none is hidden
            raise ProbeFailed(name, diagnose(error, target)) from error
        report(f"{name}: ok")
        return result

    def put() -> None:
        with storage.open_writer(key) as handle:
            handle.write(PROBE_BODY)

    def read() -> bytes:
        with storage.open_reader(key) as handle:
            return handle.read()

    step("put", put)
    try:
        if storage.requires_access_token:
            body = step("read", read)
        else:
            signed = step(
                "presign", lambda: storage.signed_url(key, now=timezone.now(), not_after=None)
            )
            body = step("get (presigned URL, no token)", lambda: fetch(signed.url))
        if body != PROBE_BODY:
            raise ProbeFailed("get", "the object came back with different content")
    finally:
        step("delete", lambda: storage.delete(key))


class GetRefused(Exception):
    """The presigned GET was answered with an error status; the store's XML body says why."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.body = status, body


def fetch(url: str) -> bytes:
    """GET a presigned URL as a client would, with no token. Through the guarded client
    with private addresses allowed: the URL is built from our own configuration
    (BULKOPS_S3_ENDPOINT_URL, often a MinIO on a private network), not from input."""
    answer = outbound.request(
        "GET", url, timeout=30, max_bytes=MAX_ANSWER_BYTES, allow_private=True
    )
    if answer.status != 200:
        raise GetRefused(answer.status, answer.body)
    return answer.body


def error_code(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    if isinstance(error, GetRefused):
        match = _XML_CODE.search(error.body)
        return match[1].decode() if match else str(error.status)
    return ""


def diagnose(error: Exception, target: Target) -> str:
    where = f"bucket {target.bucket!r} at {target.endpoint}"
    code = error_code(error)
    if isinstance(error, NoCredentialsError):
        return (
            "no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(HMAC keys on IBM COS) or AWS_PROFILE"
        )
    if code in BAD_CREDENTIALS:
        return (
            f"bad credentials ({code}): the access key is unknown or the secret key "
            f"does not match it; check {target.names.keys}"
        )
    if code == "NoSuchBucket":
        return f"missing bucket: {where} does not exist; create it or fix {target.names.bucket}"
    if code in WRONG_REGION:
        return (
            f"wrong region or endpoint ({code}): {where} lives elsewhere; check "
            f"{target.names.region} and {target.names.endpoint}"
        )
    if code == "RequestTimeTooSkewed":
        return "clock skew: this machine's clock differs too much from the server's; run NTP"
    if code == "AccessDenied":
        return f"access denied: the credentials work but may not use {where}"
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return f"endpoint unreachable: no answer from {target.endpoint}; check the URL"
    if isinstance(error, outbound.FetchError):
        return f"endpoint unreachable from this machine: {error}"
    return f"unexpected error ({code or type(error).__name__}): {error}"
