from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.roles import Role
from accounts.services import create_operator


class Command(BaseCommand):
    help = "Create a console operator with a role; prints a generated password once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--email", default="")

    def handle(
        self, *args: object, username: str, role: str, email: str, **options: object
    ) -> None:
        try:
            user, password = create_operator(username=username, role=role, email=email)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"Created {role} {user.username!r}.")
        self.stdout.write(f"Password (shown once): {password}")
