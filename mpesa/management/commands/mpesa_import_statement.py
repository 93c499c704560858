from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mpesa.models import StatementOutcome
from mpesa.services.statement import StatementFormatError, statement_import


class Command(BaseCommand):
    help = "Compare an M-Pesa Org-portal statement (CSV) with our books, receipt by receipt."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            statement = statement_import(file_name=file.name, content=file.read_bytes(), by=None)
        except (OSError, StatementFormatError) as exc:
            raise CommandError(f"{file}: {exc}") from exc
        for line in statement.lines.exclude(
            outcome__in=[StatementOutcome.MATCHED, StatementOutcome.NOT_A_PAYMENT]
        ):
            amounts = f"statement {line.paid_in}, ours {line.our_amount}"
            self.stdout.write(f"{line.receipt_no}: {line.get_outcome_display()} ({amounts})")
        self.stdout.write(f"Statement #{statement.pk}: {statement.summary}")
