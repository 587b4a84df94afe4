"""Export files in an S3-compatible bucket (AWS S3, IBM COS, MinIO, Ceph), through boto3.

Files are handed out as presigned GET URLs (requiresAccessToken: false): the bucket
checks the signature, so neither the app nor the client sends a bearer token there
(ARCHITECTURE, interop notes). Writes stream as multipart uploads, so memory holds one
part and never a whole file; an exception inside the writer aborts the upload, leaving
no orphaned parts. Keys are deterministic, so a retried partition overwrites its own.
Credentials come from boto3's default chain (environment, profile, instance role), or
for a named storage from the environment variables its configuration names.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from django.conf import settings

from bulkops.output_storages import OutputStorage
from exports.storage.base import SignedUrl

logger = logging.getLogger(__name__)

FHIR_NDJSON = "application/fhir+ndjson"
DELETE_BATCH = 1000  # the most keys DeleteObjects takes at once


@dataclass(frozen=True)
class S3Config:
    bucket: str
    endpoint_url: str
    region: str
    prefix: str
    presign_seconds: int
    part_size: int
    addressing_style: str
    sse: str
    # Names of the environment variables holding the keys; empty: boto3's default chain.
    access_key_env: str = ""
    secret_key_env: str = ""

    @classmethod
    def from_output_storage(cls, storage: OutputStorage) -> S3Config:
        """The default storage or a named one (exports.storage.storage_config); URL
        lifetime and part size are the server's, so every manifest keeps one policy."""
        return cls(
            bucket=storage.bucket,
            endpoint_url=storage.endpoint,
            region=storage.region,
            prefix=storage.prefix,
            presign_seconds=settings.BULKOPS_S3_PRESIGN_SECONDS,
            part_size=settings.BULKOPS_S3_PART_SIZE,
            addressing_style=storage.addressing_style,
            sse=storage.sse,
            access_key_env=storage.access_key_env,
            secret_key_env=storage.secret_key_env,
        )

    def credentials(self) -> dict[str, str]:
        """The keys from the variables the configuration names, read only here, when
        the client is built; nothing else ever holds them."""
        if not self.access_key_env:
            return {}
        return {
            "aws_access_key_id": os.environ[self.access_key_env],
            "aws_secret_access_key": os.environ[self.secret_key_env],
        }


class S3Storage:
    requires_access_token = False

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self.bucket = config.bucket
        self.client: Any = boto3.session.Session(**config.credentials()).client(
            "s3",
            endpoint_url=config.endpoint_url or None,
            region_name=config.region or None,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": config.addressing_style},
                retries={"mode": "standard"},
            ),
        )

    def object_key(self, key: str) -> str:
        prefix = self.config.prefix.strip("/")
        return f"{prefix}/{key}" if prefix else key

    @contextmanager
    def open_writer(self, key: str) -> Iterator[MultipartWriter]:
        writer = MultipartWriter(self, self.object_key(key))
        try:
            yield writer
            writer.complete()
        except BaseException:
            try:
                writer.abort()
            except Exception:
                # Keep the original error; the bucket's lifecycle rule for incomplete
                # uploads (README) removes what this abort could not.
                logger.exception("multipart abort failed", extra={"key": key})
            raise

    def open_reader(self, key: str) -> BinaryIO:
        return self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))["Body"]

    def open_range(self, key: str, start: int, length: int) -> BinaryIO:
        """One GET with `Range: bytes=start-end`: the bucket sends only those bytes."""
        if length <= 0:
            return io.BytesIO()
        try:
            response = self.client.get_object(
                Bucket=self.bucket,
                Key=self.object_key(key),
                Range=f"bytes={start}-{start + length - 1}",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "InvalidRange":
                return io.BytesIO()  # starts past the end of the object
            raise
        return response["Body"]

    def size(self, key: str) -> int:
        head = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix/`. Uploads a killed worker never completed are not objects;
        the bucket's AbortIncompleteMultipartUpload lifecycle rule removes them."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.object_key(prefix.rstrip("/") + "/")
        )
        root = self.object_key("")
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"].removeprefix(root)

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under `prefix/` (one job's folder) and nothing else."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=self.object_key(prefix.rstrip("/") + "/"),
            PaginationConfig={"PageSize": DELETE_BATCH},
        )
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )

    def signed_url(self, key: str, *, now: datetime, not_after: datetime | None) -> SignedUrl:
        """A presigned GET URL valid for BULKOPS_S3_PRESIGN_SECONDS, never past
        `not_after` (the job's retention end), and at least one second."""
        seconds = self.config.presign_seconds
        if not_after is not None:
            seconds = max(1, min(seconds, int((not_after - now).total_seconds())))
        url = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.object_key(key)},
            ExpiresIn=seconds,
        )
        return SignedUrl(url=url, expires_at=now + timedelta(seconds=seconds))

    def object_args(self) -> dict[str, str]:
        """Headers every stored object carries (interop notes: the NDJSON media type)."""
        args = {"ContentType": FHIR_NDJSON}
        if self.config.sse:
            args["ServerSideEncryption"] = self.config.sse
        return args


class MultipartWriter:
    """Buffers up to one part; the first full part starts a multipart upload.

    A file smaller than one part is stored with a single PUT on completion. S3 wants
    every part but the last to be at least 5 MiB, which BULKOPS_S3_PART_MB enforces.
    """

    def __init__(self, storage: S3Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        # Parts are exactly part_size bytes whatever the size of each write (exports
        # write whole chunks of resources at once), so memory stays at about one part.
        # A full part is cut only once more data follows, so a file of exactly one
        # part is still a single PUT.
        self.buffer += data
        while len(self.buffer) > self.storage.config.part_size:
            self._upload_part()

    def _upload_part(self) -> None:
        client, bucket = self.storage.client, self.storage.bucket
        if self.upload_id is None:
            self.upload_id = client.create_multipart_upload(
                Bucket=bucket, Key=self.key, **self.storage.object_args()
            )["UploadId"]
        number = len(self.parts) + 1
        response = client.upload_part(
            Bucket=bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=bytes(self.buffer[: self.storage.config.part_size]),
        )
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})
        del self.buffer[: self.storage.config.part_size]

    def complete(self) -> None:
        client, bucket = self.storage.client, self.storage.bucket
        if self.upload_id is None:
            client.put_object(
                Bucket=bucket, Key=self.key, Body=bytes(self.buffer), **self.storage.object_args()
            )
            return
        if self.buffer:
            self._upload_part()
        client.complete_multipart_upload(
            Bucket=bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )
        self.upload_id = None

    def abort(self) -> None:
        if self.upload_id is not None:
            self.storage.client.abort_multipart_upload(
                Bucket=self.storage.bucket, Key=self.key, UploadId=self.upload_id
            )
            self.upload_id = None
