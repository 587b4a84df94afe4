"""BULKOPS_OUTPUT_STORAGES: named storages are read strictly, a bad entry stops start-up
with a message naming it, and a credential never goes in the JSON (nor in a message)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from bulkops.output_storages import OutputStorage, parse_output_storages
from tests.processes import manage, process_env

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def parse(entries: Any, **environ: str) -> dict[str, OutputStorage]:
    return parse_output_storages(json.dumps(entries), environ)


def test_storages_are_read_with_the_names_of_their_credential_variables():
    parsed = parse(
        {
            "archive": {
                "kind": "s3",
                "bucket": "research",
                "prefix": "nightly",
                "endpoint": "https://s3.eu-de.cloud-object-storage.appdomain.cloud",
                "region": "eu-de",
                "access_key_env": "ARCHIVE_KEY_ID",
                "secret_key_env": "ARCHIVE_SECRET",
            },
            "scratch": {"kind": "local", "dir": "/srv/scratch"},
        },
        ARCHIVE_KEY_ID="AKIAEXAMPLE",
        ARCHIVE_SECRET=SECRET,
    )
    assert list(parsed) == ["archive", "scratch"]
    assert parsed["archive"].access_key_env == "ARCHIVE_KEY_ID"
    assert SECRET not in repr(parsed)
    assert parsed["scratch"] == OutputStorage(name="scratch", kind="local", dir="/srv/scratch")
    assert parse_output_storages("") == {}


@pytest.mark.parametrize(
    ("entries", "environ", "message"),
    [
        ("[1]", {}, "BULKOPS_OUTPUT_STORAGES must be a JSON object of name -> storage"),
        (
            {"default": {"kind": "local", "dir": "/srv"}},
            {},
            "storage 'default': the name is taken by the storage BULKOPS_STORAGE configures",
        ),
        ({"Big Name": {"kind": "local", "dir": "/srv"}}, {}, "storage 'Big Name': a name is 1"),
        ({"ftp": {"kind": "ftp"}}, {}, "storage 'ftp': 'kind' must be \"local\" or \"s3\""),
        ({"scratch": {"kind": "local", "dir": "var/x"}}, {}, "'dir' must be an absolute path"),
        ({"archive": {"kind": "s3"}}, {}, "storage 'archive': 'bucket' is required"),
        (
            {"archive": {"kind": "s3", "bucket": "b", "endpoint": "minio:9000"}},
            {},
            "'endpoint' must be an http(s) URL",
        ),
        (
            {"archive": {"kind": "s3", "bucket": "b", "bukket": "c"}},
            {},
            "storage 'archive': unknown key 'bukket'",
        ),
        (
            {"archive": {"kind": "s3", "bucket": "b", "access_key_env": "ARCHIVE_KEY_ID"}},
            {"ARCHIVE_KEY_ID": "AKIA"},
            "give both 'access_key_env' and 'secret_key_env', or neither",
        ),
        (
            {
                "archive": {
                    "kind": "s3",
                    "bucket": "b",
                    "access_key_env": "ARCHIVE_KEY_ID",
                    "secret_key_env": "ARCHIVE_SECRET",
                }
            },
            {"ARCHIVE_KEY_ID": "AKIA"},
            "storage 'archive': the environment variable ARCHIVE_SECRET it names is not set",
        ),
        ({"archive": {"kind": "s3", "bucket": 5}}, {}, "storage 'archive': 'bucket' must be"),
    ],
)
def test_a_bad_entry_is_refused_by_name(entries, environ, message):
    raw = entries if isinstance(entries, str) else json.dumps(entries)
    with pytest.raises(ImproperlyConfigured) as refused:
        parse_output_storages(raw, environ)
    assert message in str(refused.value)


def test_a_secret_written_into_the_json_is_refused_without_repeating_it():
    entries = {"archive": {"kind": "s3", "bucket": "b", "aws_secret_access_key": SECRET}}
    with pytest.raises(ImproperlyConfigured) as refused:
        parse(entries)
    assert str(refused.value) == (
        "BULKOPS_OUTPUT_STORAGES storage 'archive': 'aws_secret_access_key' would put a "
        "credential in the settings; set it in an environment variable and name that "
        "variable in 'access_key_env' or 'secret_key_env'"
    )


def test_a_bad_storage_stops_start_up(tmp_path):
    entries = {"archive": {"kind": "s3", "bucket": "b", "secret_access_key": SECRET}}
    result = manage(process_env(tmp_path, BULKOPS_OUTPUT_STORAGES=json.dumps(entries)), "check")
    assert result.returncode != 0
    assert "BULKOPS_OUTPUT_STORAGES storage 'archive': 'secret_access_key' would put" in (
        result.stderr
    )
    assert SECRET not in result.stderr + result.stdout
