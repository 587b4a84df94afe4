from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkops.outbound import FetchError
from exports.bulk_client import BulkClientError, BulkExportClient, TokenSource


class Command(BaseCommand):
    help = "Run a Bulk Data export against a FHIR server: token, kick-off, poll, download."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url", required=True, help="FHIR base, e.g. http://127.0.0.1:8000/fhir"
        )
        parser.add_argument("--token-url", help="default: <server>/auth/token")
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--key", required=True, help="JWKS file holding the private key")
        parser.add_argument("--scope", default="system/*.read")
        level = parser.add_mutually_exclusive_group()
        level.add_argument("--group", metavar="ID")
        level.add_argument("--patient-level", action="store_true")
        level.add_argument("--system", action="store_true", help="the default")
        parser.add_argument("--type", action="append", default=[], dest="types")
        parser.add_argument(
            "--type-filter",
            action="append",
            default=[],
            dest="type_filters",
            metavar="QUERY",
            help="a _typeFilter search such as 'Observation?category=laboratory' (repeatable; "
            "filters on one type are OR-ed)",
        )
        parser.add_argument("--since")
        parser.add_argument("--until", help="only resources last updated at or before this")
        parser.add_argument("--out", required=True, type=Path)
        parser.add_argument("--workers", type=int, default=4)
        parser.add_argument(
            "--allow-private",
            action=argparse.BooleanOptionalAction,
            default=True,
            help=(
                "reach loopback, private and link-local addresses (default: yes; the URLs "
                "are typed by whoever runs this command, who can reach those hosts from "
                "this shell anyway). --no-allow-private refuses them as the web app and "
                "workers do unless BULKOPS_ALLOW_PRIVATE_FETCH=true"
            ),
        )

    def handle(self, *args: object, **options: object) -> None:
        base_url = str(options["base_url"]).rstrip("/")
        token_url = options["token_url"] or base_url.rsplit("/fhir", 1)[0] + "/auth/token"
        keys = json.loads(Path(str(options["key"])).read_text())
        jwk = keys["keys"][0] if "keys" in keys else keys
        allow_private = bool(options["allow_private"])
        tokens = TokenSource(
            str(token_url),
            str(options["client_id"]),
            jwk,
            str(options["scope"]),
            allow_private=allow_private,
        )
        client = BulkExportClient(
            base_url, tokens, workers=int(options["workers"]), allow_private=allow_private
        )
        path = (
            f"/Group/{options['group']}/$export"
            if options["group"]
            else "/Patient/$export"
            if options["patient_level"]
            else "/$export"
        )
        params = [("_type", ",".join(options["types"]))] if options["types"] else []
        for name in ("since", "until"):
            if options[name]:
                params.append((f"_{name}", str(options[name])))
        params += [("_typeFilter", query) for query in options["type_filters"]]
        try:
            status_url = client.kick_off(path, params)
            self.stdout.write(f"Kick-off accepted: {status_url}")
            manifest = client.wait(status_url, self.show_progress)
            self.stdout.write("\nExport complete; downloading files...")
            outcome = client.download(manifest, options["out"])
        except (BulkClientError, FetchError) as error:
            raise CommandError(str(error)) from None
        self.summarise(outcome, options["out"])

    def show_progress(self, text: str) -> None:
        percent = int(text.split("%")[0]) if text[:1].isdigit() else 0
        bar = "#" * (percent // 5)
        sys.stdout.write(f"\r[{bar:<20}] {text[:70]:<70}")
        sys.stdout.flush()

    def summarise(self, outcome, out_dir: Path) -> None:
        files: dict[str, int] = defaultdict(int)
        resources: dict[str, int] = defaultdict(int)
        for resource_type, _, lines in outcome.files:
            files[resource_type] += 1
            resources[resource_type] += lines
        self.stdout.write(f"\n{'type':<28}{'files':>7}{'resources':>12}")
        for resource_type in sorted(files):
            self.stdout.write(
                f"{resource_type:<28}{files[resource_type]:>7}{resources[resource_type]:>12}"
            )
        self.stdout.write(f"{'total':<28}{sum(files.values()):>7}{sum(resources.values()):>12}")
        for warning in outcome.warnings:
            self.stdout.write(f"warning: {warning}")
        self.stdout.write(f"Files are in {out_dir}")
