from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from mpesa.callbacks import NAIROBI
from mpesa.daraja import DarajaError
from mpesa.services.pull import mpesa_pull


class Command(BaseCommand):
    help = (
        "Ask Safaricom for every C2B payment since a moment (default: the last 48 hours, all Safaricom "
        "keeps) and book any receipt we never got a callback for. Safe to schedule."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="'YYYY-MM-DD HH:MM' Nairobi time (default: 48 hours ago)")
        parser.add_argument("--hours", type=int, default=48, help="window when --since is not given")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["since"]:
            try:
                since = datetime.strptime(options["since"], "%Y-%m-%d %H:%M").replace(tzinfo=NAIROBI)
            except ValueError as exc:
                raise CommandError("--since is 'YYYY-MM-DD HH:MM' (Nairobi time).") from exc
        else:
            since = timezone.now() - timedelta(hours=options["hours"])
        try:
            result = mpesa_pull(since=since)
        except DarajaError as exc:
            raise CommandError(f"Safaricom refused the pull: {exc}") from exc
        self.stdout.write(
            f"{result.listed} payment(s) listed by Safaricom; {len(result.booked)} recovered and booked "
            f"({', '.join(result.booked) or 'none'}); {result.already_booked} already booked; "
            f"{len(result.unreadable)} unreadable."
        )
