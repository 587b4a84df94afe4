"""Named output storages besides the default one, read from BULKOPS_OUTPUT_STORAGES.

The variable holds a JSON object of name -> storage, e.g.
`{"archive": {"kind": "s3", "bucket": "research", "access_key_env": "ARCHIVE_KEY_ID",
"secret_key_env": "ARCHIVE_SECRET"}, "scratch": {"kind": "local", "dir": "/srv/scratch"}}`.
A storage's credentials are never in the JSON: it names the environment variables
holding them, so the secret values stay out of the settings, the database (a job and a
schedule record only the storage's name), pages, logs and the audit trail. A bad entry
stops start-up with a message naming it, never echoing a value that might be a secret.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

SETTING = "BULKOPS_OUTPUT_STORAGES"
DEFAULT_STORAGE = "default"  # the storage BULKOPS_STORAGE and BULKOPS_S3_* configure
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ADDRESSING_STYLES = ("auto", "path", "virtual")
LOCAL_KEYS = {"kind", "dir"}
S3_KEYS = {
    "kind",
    "bucket",
    "prefix",
    "endpoint",
    "region",
    "addressing_style",
    "sse",
    "access_key_env",
    "secret_key_env",
}
# Key names that would put a credential itself into the JSON.
_SECRET_LIKE = re.compile(r"secret|password|token|access_key|credential", re.IGNORECASE)


@dataclass(frozen=True)
class OutputStorage:
    """One configured storage: where its files go, and the names (never the values) of
    the environment variables holding its S3 credentials."""

    name: str
    kind: str  # "local" or "s3"
    dir: str = ""
    bucket: str = ""
    prefix: str = ""
    endpoint: str = ""
    region: str = ""
    addressing_style: str = "auto"
    sse: str = ""
    access_key_env: str = ""
    secret_key_env: str = ""

    @property
    def summary(self) -> str:
        """Where the files go, for check_storage and the console (no credentials)."""
        if self.kind == "local":
            return f"local directory {self.dir}"
        return f"S3 bucket {self.bucket} at {self.endpoint or 'AWS S3'}"


def parse_output_storages(
    raw: str, environ: Mapping[str, str] = os.environ
) -> dict[str, OutputStorage]:
    """The storages `raw` (the variable's JSON) defines, by name; ImproperlyConfigured
    naming the first bad entry. `environ` is where the credential variables must be set."""
    if not raw.strip():
        return {}
    try:
        entries = json.loads(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{SETTING} must be a JSON object: {error}") from None
    if not isinstance(entries, dict):
        raise ImproperlyConfigured(f"{SETTING} must be a JSON object of name -> storage")
    return {name: _storage(name, entry, environ) for name, entry in entries.items()}


def _storage(name: str, entry: Any, environ: Mapping[str, str]) -> OutputStorage:
    where = f"{SETTING} storage {name!r}"
    if name == DEFAULT_STORAGE:
        raise ImproperlyConfigured(
            f"{where}: the name is taken by the storage BULKOPS_STORAGE configures"
        )
    if not NAME.match(name):
        raise ImproperlyConfigured(
            f"{where}: a name is 1 to 32 lower-case letters, digits, '-' or '_'"
        )
    if not isinstance(entry, dict):
        raise ImproperlyConfigured(f"{where} must be a JSON object")
    kind = entry.get("kind")
    if kind not in ("local", "s3"):
        raise ImproperlyConfigured(f'{where}: \'kind\' must be "local" or "s3"')
    allowed = LOCAL_KEYS if kind == "local" else S3_KEYS
    for key in sorted(set(entry) - allowed):
        if _SECRET_LIKE.search(key):
            raise ImproperlyConfigured(
                f"{where}: {key!r} would put a credential in the settings; set it in an "
                "environment variable and name that variable in 'access_key_env' or "
                "'secret_key_env'"
            )
        raise ImproperlyConfigured(
            f"{where}: unknown key {key!r} (a {kind} storage takes {', '.join(sorted(allowed))})"
        )
    for key, value in entry.items():
        if not isinstance(value, str):
            raise ImproperlyConfigured(f"{where}: {key!r} must be a string")
    fields = {key: value.strip() for key, value in entry.items()}
    if kind == "local":
        if not fields.get("dir", "").startswith("/"):
            raise ImproperlyConfigured(f"{where}: 'dir' must be an absolute path")
    else:
        _check_s3(where, fields, environ)
    return OutputStorage(name=name, **fields)


def _check_s3(where: str, fields: dict[str, str], environ: Mapping[str, str]) -> None:
    if not fields.get("bucket"):
        raise ImproperlyConfigured(f"{where}: 'bucket' is required")
    endpoint = fields.get("endpoint", "")
    if endpoint and not endpoint.startswith(("https://", "http://")):
        raise ImproperlyConfigured(f"{where}: 'endpoint' must be an http(s) URL")
    if fields.get("addressing_style", "auto") not in ADDRESSING_STYLES:
        raise ImproperlyConfigured(
            f"{where}: 'addressing_style' must be one of {', '.join(ADDRESSING_STYLES)}"
        )
    names = [fields.get("access_key_env", ""), fields.get("secret_key_env", "")]
    if any(names) and not all(names):
        raise ImproperlyConfigured(
            f"{where}: give both 'access_key_env' and 'secret_key_env', or neither "
            "(boto3's default credential chain)"
        )
    for variable in filter(None, names):
        if not ENV_NAME.match(variable):
            raise ImproperlyConfigured(
                f"{where}: {variable!r} is not the name of an environment variable"
            )
        if not environ.get(variable):
            raise ImproperlyConfigured(
                f"{where}: the environment variable {variable} it names is not set"
            )
