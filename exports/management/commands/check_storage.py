from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from exports.storage import ExportStorage, get_storage
from exports.storage.probe import ProbeFailed, Target, probe_storage


class Command(BaseCommand):
    help = (
        "Check the export storage end to end: put, presign, GET over plain HTTP and delete "
        "a probe object. Prints a diagnosis and exits non-zero on failure."
    )

    def handle(self, *args: object, **options: object) -> None:
        storage, target = configured_storage()
        self.stdout.write(f"checking {target.bucket} at {target.endpoint}")
        try:
            probe_storage(storage, target, self.stdout.write)
        except ProbeFailed as failure:
            raise CommandError(str(failure)) from None
        self.stdout.write(self.style.SUCCESS("storage works"))


def configured_storage() -> tuple[ExportStorage, Target]:
    """A fresh S3 client, not get_storage()'s shared one: the check must use the
    credentials and settings as they are now."""
    if settings.BULKOPS_STORAGE != "s3":
        return get_storage(), Target("local storage", str(settings.BULKOPS_LOCAL_STORAGE_DIR))
    from exports.storage.s3 import S3Config, S3Storage

    storage = S3Storage(S3Config.from_settings())
    return storage, Target(storage.bucket, storage.client.meta.endpoint_url)
