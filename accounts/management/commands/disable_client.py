from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import disable_client


class Command(BaseCommand):
    help = "Disable a backend client: its tokens stop working at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("client_id")

    def handle(self, *args: object, client_id: str, **options: object) -> None:
        try:
            client = disable_client(client_id=client_id, actor=None)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"Disabled client {client.name!r} ({client.client_id}).")
