from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exports.storage import (
    DEFAULT_STORAGE,
    ExportStorage,
    UnknownStorage,
    get_storage,
    storage_config,
    storage_names,
)
from exports.storage.probe import ProbeFailed, SettingNames, Target, probe_storage


class Command(BaseCommand):
    help = (
        "Check every output storage end to end (or the one --storage names): put, presign, "
        "GET over plain HTTP and delete a probe object. Prints a diagnosis and exits "
        "non-zero when any fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--storage", help="Check only this storage (default: all).")

    def handle(self, *args: object, **options: object) -> None:
        names = [str(options["storage"])] if options["storage"] else storage_names()
        failures = []
        for name in names:
            try:
                storage, target = configured_storage(name)
            except UnknownStorage as missing:
                failures.append(f"{missing}; configured: {', '.join(storage_names())}")
                continue
            self.stdout.write(f"checking {target.bucket} at {target.endpoint} ({name})")
            try:
                probe_storage(storage, target, self.stdout.write)
            except ProbeFailed as failure:
                # The default storage's diagnosis stands alone, as when it was the only one.
                prefix = "" if name == DEFAULT_STORAGE else f"storage {name!r}: "
                failures.append(f"{prefix}{failure}")
                continue
            self.stdout.write(self.style.SUCCESS("storage works"))
        if failures:
            raise CommandError("\n".join(failures))


def configured_storage(name: str) -> tuple[ExportStorage, Target]:
    """A fresh S3 client, not get_storage()'s shared one: the check must use the
    credentials and settings as they are now."""
    from exports.storage.s3 import S3Config, S3Storage

    config = storage_config(name)
    if config.kind == "local":
        return get_storage(name), Target("local storage", config.dir)
    names = SettingNames()
    if name != DEFAULT_STORAGE:
        names = SettingNames.of_named(name, config.access_key_env, config.secret_key_env)
    storage = S3Storage(S3Config.from_output_storage(config))
    return storage, Target(storage.bucket, storage.client.meta.endpoint_url, names)
