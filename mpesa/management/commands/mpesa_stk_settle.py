from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from mpesa.services.stk import stk_settle_unanswered


class Command(BaseCommand):
    help = "Ask Safaricom about M-Pesa Express prompts that got no callback, and settle them. Schedulable."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=int, default=60, help="seconds since the prompt was sent")

    def handle(self, *args: Any, **options: Any) -> None:
        settled = stk_settle_unanswered(older_than_seconds=options["older_than"])
        for push in settled:
            self.stdout.write(f"{push}: {push.get_status_display()} ({push.result_code} {push.result_desc})")
        self.stdout.write(f"{len(settled)} prompt(s) settled.")
