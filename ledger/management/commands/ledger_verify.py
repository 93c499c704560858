from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ledger.selectors import ledger_verify


class Command(BaseCommand):
    help = (
        "Check the whole ledger: balanced entries, debits = credits, balances = lines, reversals net to zero."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = ledger_verify()
        if result["is_valid"]:
            self.stdout.write(self.style.SUCCESS("Ledger valid: every check passed."))
            return
        for error in result["errors"]:
            self.stderr.write(error)
        raise CommandError(f"Ledger INVALID: {len(result['errors'])} problem(s).", returncode=1)
