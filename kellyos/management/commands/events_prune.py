from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kellyos.events import events_prune


class Command(BaseCommand):
    help = "Delete live-update events older than --older-than-hours (default 24); scheduled daily."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than-hours", type=float, default=24.0)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            deleted = events_prune(older_than=timedelta(hours=options["older_than_hours"]))
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        hours = options["older_than_hours"]
        self.stdout.write(f"Deleted {deleted} live-update events older than {hours} hours.")
