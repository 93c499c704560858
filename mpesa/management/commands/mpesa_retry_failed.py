from typing import Any

from django.core.management.base import BaseCommand

from mpesa.services.c2b import c2b_retry_failed


class Command(BaseCommand):
    help = (
        "Process again every M-Pesa confirmation, STK callback or reversal result whose processing failed. "
        "Safe to run again and from a schedule."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        results = c2b_retry_failed()
        for log in results:
            self.stdout.write(f"{log}: {log.get_status_display()} {log.detail}".rstrip())
        still_failed = sum(log.status == "FAILED" for log in results)
        self.stdout.write(f"{len(results)} failed callback(s) retried; {still_failed} still failing.")
