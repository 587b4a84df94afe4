from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from accounts.management.commands.operator import create
from accounts.roles import Role


class Command(BaseCommand):
    help = (
        "Create a console operator with a role; prints a generated password once "
        "(the same as `operator create`)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--email", default="")

    def handle(
        self, *args: object, username: str, role: str, email: str, **options: object
    ) -> None:
        create(self.stdout, username=username, role=role, email=email)
