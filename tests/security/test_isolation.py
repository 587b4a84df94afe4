"""One client never reaches another's jobs or files: not by guessing ids, not by
reusing the shape of its own URLs, not with an expired token or an expired file URL.
A disabled client's running jobs can still be stopped by operators, and its files are
no longer served to it."""

from __future__ import annotations

import hashlib
import hmac
import math
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, parse_qsl, quote, urlsplit

import pytest
from django.utils import timezone

from accounts.models import CLIENT_ID_ALPHABET, AccessToken, BackendClient, new_client_id
from accounts.services import disable_client
from exports.models import ExportFile, ExportJob
from tests.exports.test_s3_storage import accepted_job, fetch, finished_job

pytestmark = pytest.mark.django_db


def get(client, url: str, token: str):
    return client.http.get(url, headers={"Authorization": f"Bearer {token}"})


def outcome_text(response) -> str:
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]["diagnostics"]


def test_client_b_gets_404_for_everything_of_client_a(client_a, client_b, store) -> None:
    job_a = finished_job(client_a, _type="Patient,Observation")
    job_b = finished_job(client_b, _type="Patient")
    token_b = client_b.token()
    own_status = f"/fhir/bulkstatus/{job_b.uuid}"
    assert get(client_b, own_status, token_b).status_code == 200
    a_urls = [f"/fhir/bulkstatus/{job_a.uuid}"] + [
        f"/fhir/bulkfiles/{file.uuid}" for file in job_a.files.all()
    ]
    # B's own URL shapes with A's ids, and with random ids: the same 404, so B cannot
    # even tell that A's job exists.
    for url in a_urls:
        response = get(client_b, url, token_b)
        assert response.status_code == 404, url
        assert "No such" in outcome_text(response)
    for kind, existing in (("bulkstatus", a_urls[0]), ("bulkfiles", a_urls[1])):
        guessed = f"/fhir/{kind}/{uuid.uuid4()}"
        assert get(client_b, existing, token_b).content == get(client_b, guessed, token_b).content
    # DELETE on A's status URL changes nothing.
    deleted = client_b.http.delete(a_urls[0], headers={"Authorization": f"Bearer {token_b}"})
    assert deleted.status_code == 404
    job_a.refresh_from_db()
    assert job_a.deleted_at is None and job_a.status == ExportJob.Status.COMPLETED
    # A still reads all of it.
    token_a = client_a.token()
    assert [get(client_a, url, token_a).status_code for url in a_urls] == [200] * len(a_urls)


def test_status_and_files_need_a_token(client_a, store) -> None:
    job = finished_job(client_a, _type="Patient")
    for url in (f"/fhir/bulkstatus/{job.uuid}", f"/fhir/bulkfiles/{job.files.get().uuid}"):
        response = client_a.http.get(url)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="bulkops"'
        assert "needs an access token" in outcome_text(response)


def test_job_and_file_ids_are_random_uuid4(client_a, store) -> None:
    jobs = [finished_job(client_a, _type="Patient") for _ in range(3)]
    ids = [job.uuid for job in jobs] + [f.uuid for f in ExportFile.objects.all()]
    assert len(set(ids)) == len(ids) == 6
    # Version 4, RFC 4122 variant: 122 random bits each, nothing derived from time or pk.
    assert {(i.version, i.variant) for i in ids} == {(4, uuid.RFC_4122)}


def test_client_ids_carry_190_random_bits() -> None:
    ids = {new_client_id() for _ in range(500)}
    assert len(ids) == 500
    assert {len(i) for i in ids} == {32}
    assert set("".join(ids)) <= set(CLIENT_ID_ALPHABET)
    assert len(CLIENT_ID_ALPHABET) == 62
    assert math.floor(32 * math.log2(len(CLIENT_ID_ALPHABET))) == 190
    # Every symbol of the alphabet turns up: the ids use all of it, not a subset.
    assert set("".join(ids)) == set(CLIENT_ID_ALPHABET)


def test_access_tokens_are_random_and_stored_only_as_hashes(client_a) -> None:
    raws = {client_a.token() for _ in range(3)}
    assert len(raws) == 3 and all(len(raw) >= 43 for raw in raws)  # ≥ 256 bits, base64url
    stored = set(AccessToken.objects.values_list("token_hash", flat=True))
    assert not raws & stored


def test_an_expired_access_token_is_refused(client_a, store) -> None:
    job = finished_job(client_a, _type="Patient")
    token = client_a.token()
    urls = [f"/fhir/bulkstatus/{job.uuid}", f"/fhir/bulkfiles/{job.files.get().uuid}"]
    assert [get(client_a, url, token).status_code for url in urls] == [200, 200]
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    for url in [*urls, "/fhir/$export"]:
        response = get(client_a, url, token)
        assert response.status_code == 401, url
        assert response["WWW-Authenticate"] == 'Bearer realm="bulkops", error="invalid_token"'
        assert "unknown, expired or revoked" in outcome_text(response)


S3_SECRET = "testing"  # the moto fixture's AWS_SECRET_ACCESS_KEY


def sigv4_verdict(url: str, now: datetime | None = None) -> str:
    """What an S3 store that checks SigV4 query signatures says of `url`: "ok",
    "expired" or "bad signature". moto's server serves presigned URLs without checking
    them, so the check that AWS S3, MinIO or Ceph make is spelled out here."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    signature = query.pop("X-Amz-Signature")
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if (now or datetime.now(UTC)) > signed_at + timedelta(seconds=int(query["X-Amz-Expires"])):
        return "expired"
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    canonical = (
        f"GET\n{parts.path}\n{canonical_query}\nhost:{parts.netloc}\n\nhost\nUNSIGNED-PAYLOAD"
    )
    scope = query["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            query["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{S3_SECRET}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return "ok" if hmac.compare_digest(expected, signature) else "bad signature"


def test_s3_presigned_urls_are_bound_to_their_object(client_a, client_b, store, s3) -> None:
    job_a = finished_job(client_a, _type="Patient")
    job_b = finished_job(client_b, _type="Patient")
    response = get(client_b, f"/fhir/bulkfiles/{job_b.files.get().uuid}", client_b.token())
    assert response.status_code == 302
    own = response["Location"]
    assert fetch(own)[0]
    assert sigv4_verdict(own) == "ok"
    # B's own URL with A's job in the key, or with a longer life: the signature no
    # longer matches, so the store refuses it.
    forged_key = own.replace(str(job_b.uuid), str(job_a.uuid))
    assert forged_key != own and sigv4_verdict(forged_key) == "bad signature"
    expires = parse_qs(urlsplit(own).query)["X-Amz-Expires"][0]
    longer = own.replace(f"X-Amz-Expires={expires}", "X-Amz-Expires=604800")
    assert sigv4_verdict(longer) == "bad signature"
    # Through bulkops, B gets 404 for A's file, never a URL.
    file_a = f"/fhir/bulkfiles/{job_a.files.get().uuid}"
    assert get(client_b, file_a, client_b.token()).status_code == 404


def test_s3_presigned_urls_expire_as_configured(client_a, store, s3, settings) -> None:
    settings.BULKOPS_S3_PRESIGN_SECONDS = 60
    job = finished_job(client_a, _type="Patient")
    manifest = get(client_a, f"/fhir/bulkstatus/{job.uuid}", client_a.token()).json()
    (url,) = [item["url"] for item in manifest["output"]]
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["60"]
    assert sigv4_verdict(url) == "ok"
    assert sigv4_verdict(url, now=datetime.now(UTC) + timedelta(seconds=61)) == "expired"
    # The manifest's Expires header tells the client the same deadline.
    status = get(client_a, f"/fhir/bulkstatus/{job.uuid}", client_a.token())
    assert parsedate_to_datetime(status["Expires"]) <= timezone.now() + timedelta(seconds=61)


def test_a_disabled_clients_jobs_are_cancelled_by_operators_and_its_files_withheld(
    client_a, store, console_client, api_as
) -> None:
    finished = finished_job(client_a, _type="Patient")
    running_1, running_2 = accepted_job(client_a), accepted_job(client_a)
    token = client_a.token()
    file_url = f"/fhir/bulkfiles/{finished.files.get().uuid}"
    assert get(client_a, file_url, token).status_code == 200

    disable_client(client_id=client_a.backend_client.client_id, actor=None)
    disabled = BackendClient.objects.get(pk=client_a.backend_client.pk)
    assert disabled.status == BackendClient.Status.DISABLED
    # The client's old token no longer opens anything, and it gets no new one.
    for url in (
        file_url,
        f"/fhir/bulkstatus/{finished.uuid}",
        f"/fhir/bulkstatus/{running_1.uuid}",
    ):
        assert get(client_a, url, token).status_code == 401, url
    with pytest.raises(AssertionError, match="unauthorized_client"):
        client_a.token()

    # An operator cancels one running job in the console, another through the API.
    console = console_client("operator")
    response = console.post(f"/exports/{running_1.uuid}/delete/", follow=True)
    assert response.status_code == 200
    assert b"Export cancelled." in response.content
    api = api_as("operator")
    response = api.post(f"/api/v1/exports/{running_2.uuid}/cancel")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    for job in (running_1, running_2):
        job.refresh_from_db()
        assert job.status == ExportJob.Status.CANCELLED and job.deleted_at is not None
