from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from accounts.demo import ensure_demo_client
from accounts.first_steps import boxed, keep
from accounts.roles import Role
from accounts.services import create_operator

DEMO_USERNAME = "admin"


class Command(BaseCommand):
    help = (
        "On an empty database, create the demo operator (password printed once) and the "
        "demo backend client; always print how to log in and run a first export."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--later",
            action="store_true",
            help="keep the steps for `first_steps` to print once the processes are up "
            "(make run) instead of printing them now",
        )
        parser.add_argument(
            "--key-file",
            type=Path,
            help="where the demo client's private key goes (default: var/demo-client-key.jwks)",
        )

    def handle(
        self, *args: object, url: str, key_file: Path | None, later: bool, **options: object
    ) -> None:
        lines = [f"bulkops console: {url}/"]
        if get_user_model().objects.exists():
            lines += [
                "Log in with an existing operator. Forgot the demo password? Run",
                f"  .venv/bin/python manage.py changepassword {DEMO_USERNAME}",
            ]
        else:
            _, password = create_operator(username=DEMO_USERNAME, role=Role.ADMIN)
            lines += [
                f"Log in as:  {DEMO_USERNAME}",
                f"Password:   {password}   (shown only this once; keep it)",
            ]
        key_path = key_file or settings.VAR_DIR / "demo-client-key.jwks"
        client = ensure_demo_client(key_path)
        lines += [
            "",
            f"Demo backend client: {client.client_id} (private key: {key_path}, "
            f"and as PEM: {key_path.with_suffix('.pem')})",
            "Run a first export (with `make run` going, in another terminal):",
            f"  .venv/bin/python manage.py bulk_export --base-url {url}/fhir \\",
            f"      --client-id {client.client_id} --key {key_path} --out var/demo-export",
        ]
        if later:
            keep(lines)
            self.stdout.write("The console's address and first steps follow once it is up.")
        else:
            self.stdout.write(boxed(lines))
