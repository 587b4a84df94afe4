from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from accounts.management.commands.operator import reset_password


class Command(BaseCommand):
    help = (
        "Give an operator a generated password, printed once, and end their sessions "
        "(audited; the same as `operator reset-password`). Django's changepassword sets "
        "one you type instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: object, username: str, **options: object) -> None:
        reset_password(self.stdout, username=username)
