"""Demo data for `make run`: an admin login and a few days of bookings. Safe to run again."""

import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils import timezone

from ledger.chart import ACCOUNTS_RECEIVABLE, MPESA_CASH, SALES_REVENUE, UNALLOCATED_RECEIPTS
from ledger.models import CauseKind, JournalEntry
from ledger.services import JournalLineInput, journal_entry_post

# (demo id, days ago, memo, debit account, credit account, amount)
DEMO_BOOKINGS = [
    (
        "demo-1",
        3,
        "Invoice INV-DEMO-0001: school fees, Term 1",
        ACCOUNTS_RECEIVABLE,
        SALES_REVENUE,
        "45000.00",
    ),
    (
        "demo-2",
        2,
        "M-Pesa RKT1DEMO01 from Wanjiku: part payment of INV-DEMO-0001",
        MPESA_CASH,
        ACCOUNTS_RECEIVABLE,
        "20000.00",
    ),
    ("demo-3", 1, "Till sale: 2 x maize flour 2kg", MPESA_CASH, SALES_REVENUE, "460.00"),
    (
        "demo-4",
        0,
        "M-Pesa RKT1DEMO02 with unknown account ref 'shule': held in suspense",
        MPESA_CASH,
        UNALLOCATED_RECEIPTS,
        "1500.00",
    ),
]

DEMO_LOCK_KEY = 4_201_001  # advisory lock: two loaders at once must not both book or both add an admin


class Command(BaseCommand):
    help = "Create an admin login if there is none and load demo bookings (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [DEMO_LOCK_KEY])
            self._ensure_admin()
            loaded = set(
                JournalEntry.objects.filter(cause_kind=CauseKind.DEMO).values_list("cause_id", flat=True)
            )
            now = timezone.now()
            for demo_id, days_ago, memo, debit_account, credit_account, amount in DEMO_BOOKINGS:
                if demo_id in loaded:
                    continue
                journal_entry_post(
                    memo=memo,
                    lines=[
                        JournalLineInput(account=debit_account, debit=Decimal(amount)),
                        JournalLineInput(account=credit_account, credit=Decimal(amount)),
                    ],
                    cause_kind=CauseKind.DEMO,
                    cause_id=demo_id,
                    posted_at=now - timedelta(days=days_ago),
                )
        self.stdout.write(f"Demo data loaded ({len(DEMO_BOOKINGS)} demo bookings in the ledger).")

    def _ensure_admin(self) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                "An admin user already exists (reset a password with `manage.py changepassword`)."
            )
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username="admin", email="admin@example.com", password=password)
        self.stdout.write(self.style.SUCCESS(f"Admin login created: username admin, password {password}"))
