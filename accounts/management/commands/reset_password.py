from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import reset_operator_password


class Command(BaseCommand):
    help = (
        "Give an operator a generated password, printed once, and end their sessions "
        "(audited). Django's changepassword sets one you type instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: object, username: str, **options: object) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No operator is called {username!r}.")
        password = reset_operator_password(user=user, admin=None)
        self.stdout.write(f"New password for {username!r} (shown once): {password}")
