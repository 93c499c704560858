from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Q
from django.utils import timezone

from mpesa.models import WebhookLog, WebhookStatus
from mpesa.services.c2b import c2b_retry_failed


class Command(BaseCommand):
    help = (
        "Process again every M-Pesa confirmation, STK callback or reversal result whose processing failed. "
        "Safe to run again and from a schedule."
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
        logs = None
        if options["stuck_after"] is not None:
            stuck_before = timezone.now() - timedelta(seconds=options["stuck_after"])
            logs = WebhookLog.objects.filter(
                Q(status=WebhookStatus.FAILED)
                | Q(status=WebhookStatus.RECEIVED, received_at__lt=stuck_before)
            )
        results = c2b_retry_failed(logs=logs)
        for log in results:
            self.stdout.write(f"{log}: {log.get_status_display()} {log.detail}".rstrip())
        still_failed = sum(log.status == "FAILED" for log in results)
        self.stdout.write(f"{len(results)} failed callback(s) retried; {still_failed} still failing.")
