from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

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
        parser.add_argument(
            "--elements",
            action="append",
            default=[],
            metavar="ELEMENT",
            help="an _elements entry, 'element' or 'Type.element' (repeatable)",
        )
        parser.add_argument(
            "--patient",
            action="append",
            default=[],
            dest="patients",
            metavar="ID",
            help="export only this patient (repeatable; Patient and Group level; sent as a "
            "POST Parameters body, the only way Bulk Data accepts it)",
        )
        parser.add_argument(
            "--lenient",
            action="store_true",
            help="send 'Prefer: handling=lenient': the server may leave out what it cannot "
            "honour and say so in the manifest's error files",
        )
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
        try:
            status_url = client.kick_off(
                path, kick_off_parameters(options), lenient=bool(options["lenient"])
            )
            self.stdout.write(f"Kick-off accepted: {status_url}")
            progress = ProgressBar(self.stdout)
            manifest = client.wait(status_url, progress.show)
            progress.end()
            self.stdout.write("Export complete; downloading files...")
            outcome = client.download(manifest, options["out"])
        except (BulkClientError, FetchError) as error:
            raise CommandError(str(error)) from None
        self.summarise(outcome, options["out"])

    def summarise(self, outcome, out_dir: Path) -> None:
        files: dict[str, int] = defaultdict(int)
        resources: dict[str, int] = defaultdict(int)
        for resource_type, _, lines in outcome.files:
            files[resource_type] += 1
            resources[resource_type] += lines
        self.stdout.write(f"{'type':<28}{'files':>7}{'resources':>12}")
        for resource_type in sorted(files):
            self.stdout.write(
                f"{resource_type:<28}{files[resource_type]:>7}{resources[resource_type]:>12}"
            )
        self.stdout.write(f"{'total':<28}{sum(files.values()):>7}{sum(resources.values()):>12}")
        for warning in outcome.warnings:
            self.stdout.write(f"warning: {warning}")
        self.stdout.write(f"Files are in {out_dir}")


def kick_off_parameters(options: dict[str, Any]) -> list[tuple[str, str]]:
    """The command's options as kick-off parameters, in the order a client writes them."""
    params = [("_type", ",".join(options["types"]))] if options["types"] else []
    for name in ("since", "until"):
        if options[name]:
            params.append((f"_{name}", str(options[name])))
    if options["elements"]:
        params.append(("_elements", ",".join(options["elements"])))
    params += [("_typeFilter", query) for query in options["type_filters"]]
    params += [("patient", f"Patient/{patient}") for patient in options["patients"]]
    return params


class ProgressBar:
    """The server's X-Progress as a bar redrawn in place on a terminal, or as one plain
    line each time the text changes when the output is a file or a pipe (a log then
    holds no carriage returns)."""

    WIDTH = 20

    def __init__(self, stdout: OutputWrapper) -> None:
        self.stdout = stdout
        self.tty = stdout.isatty()
        self.last = ""

    def show(self, text: str) -> None:
        if self.tty:
            match = re.match(r"\s*(\d{1,3})%", text)
            filled = min(int(match[1]), 100) * self.WIDTH // 100 if match else 0
            self.stdout.write(f"\r[{'#' * filled:<{self.WIDTH}}] {text[:70]:<70}", ending="")
            self.stdout.flush()
        elif text != self.last:
            self.stdout.write(f"progress: {text or 'in progress'}")
        self.last = text

    def end(self) -> None:
        """Leave the bar's line before anything else is written."""
        if self.tty and self.last:
            self.stdout.write("")
