from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.jwks import registered_keys
from accounts.services import register_client


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return "; ".join(exc.messages)


class Command(BaseCommand):
    help = (
        "Register a SMART backend client with its public keys and allowed scopes; "
        "prints the client_id as the last line (or a JSON object with --json)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        keys = parser.add_mutually_exclusive_group(required=True)
        keys.add_argument("--jwks-file", type=Path, help="a file holding the public JWK Set")
        keys.add_argument("--jwks-url", help="an https URL serving the public JWK Set")
        parser.add_argument("--scopes", required=True, help='e.g. "system/*.read"')
        parser.add_argument(
            "--group", action="append", default=[], dest="groups", help="bind to a Group id"
        )
        parser.add_argument("--json", action="store_true", help="print a JSON object")

    def handle(self, *args: object, **options: Any) -> None:
        jwks = self._read_jwks(options["jwks_file"]) if options["jwks_file"] else None
        try:
            client = register_client(
                name=options["name"],
                jwks=jwks,
                jwks_uri=options["jwks_url"],
                scopes=options["scopes"],
                group_ids=options["groups"],
            )
        except ValidationError as exc:
            raise CommandError(_messages(exc)) from None
        keys = registered_keys(client)
        groups = list(client.bound_groups.values_list("group_id", flat=True))
        if options["json"]:
            summary = {
                "client_id": client.client_id,
                "name": client.name,
                "scopes": client.scopes.split(),
                "groups": groups,
                "jwks_uri": client.jwks_uri or None,
                "keys": [
                    {"kid": k.kid, "kty": k.kty, "alg": k.algorithm, "problem": k.problem}
                    for k in keys
                ],
            }
            self.stdout.write(json.dumps(summary, indent=2))
            return
        self.stdout.write(f"Registered client {client.name!r} with scopes {client.scopes}.")
        if groups:
            self.stdout.write(f"Bound to groups: {', '.join(groups)}.")
        for key in keys:
            self.stdout.write(f"  {key.describe()}")
        self.stdout.write(client.client_id)

    def _read_jwks(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
        except ValueError:
            raise CommandError(f"{path} is not JSON.") from None
