from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from kellyos.slots import refusal_tally_fold
from mpesa.services.c2b import STUCK_AFTER, c2b_retry_failed
from mpesa.services.monitoring import callback_tally_fold


class Command(BaseCommand):
    help = (
        "Process again every M-Pesa confirmation, STK callback or reversal result whose processing failed. "
        "Safe to run again and from a schedule. Also folds the callback and refusal counts of database "
        "connections that have gone, so they stay a few rows when /metrics is not scraped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stuck-after",
            type=int,
            metavar="SECONDS",
            help="Also take callbacks still unprocessed this long after arrival (default: 300). A fault "
            "drill uses 0 to book at once what killed workers left; a log being booked now is skipped.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        seconds = options["stuck_after"]
        results = c2b_retry_failed(stuck_after=STUCK_AFTER if seconds is None else timedelta(seconds=seconds))
        for log in results:
            self.stdout.write(f"{log}: {log.get_status_display()} {log.detail}".rstrip())
        still_failed = sum(log.status == "FAILED" for log in results)
        folded = callback_tally_fold() + refusal_tally_fold()
        self.stdout.write(f"{folded} callback and refusal count row(s) of gone database connections folded.")
        self.stdout.write(f"{len(results)} failed callback(s) retried; {still_failed} still failing.")
