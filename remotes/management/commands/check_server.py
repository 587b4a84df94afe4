"""`manage.py check_server NAME`: the conformance battery from the command line. Prints
one line per check and exits 1 when any check failed."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from remotes.models import RemoteServer, ServerCheck
from remotes.server_checks import run_check


class Command(BaseCommand):
    help = "Run the Bulk Data conformance battery against a registered remote server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the remote server's name")

    def handle(self, *args: object, **options: object) -> None:
        server = RemoteServer.objects.filter(name=options["name"]).first()
        if server is None:
            raise CommandError(f"No remote server is named {options['name']!r}.")
        check = run_check(check=ServerCheck.objects.create(server=server))
        if check.error:
            raise CommandError(check.error)
        width = max(len(result["name"]) for result in check.results)
        for result in check.results:
            self.stdout.write(
                f"{result['name']:<{width}}  {result['status']:<4}  {result['summary']}"
            )
        counts = check.counts()
        self.stdout.write(", ".join(f"{count} {status}" for status, count in counts.items()))
        if counts["fail"]:
            raise CommandError(f"{counts['fail']} check(s) failed against {server.name}.")
