"""Demo data for `make run`: an admin login, customers with invoices in every status and a credit
balance, a till sale, and two M-Pesa payments through the real pipeline (one booked to a customer,
one held in suspense). Safe to run again: it loads once."""

import json
import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils import timezone

from customers.models import Customer
from customers.services import customer_create
from invoices.models import Invoice
from invoices.services import InvoiceLineInput, invoice_create, invoice_void, payment_receive
from ledger.chart import MPESA_CASH, SALES_REVENUE
from ledger.models import CauseKind
from ledger.services import JournalLineInput, journal_entry_post
from mpesa.callbacks import c2b_payment_parse
from mpesa.fake_daraja import c2b_payment_payload
from mpesa.models import WebhookKind
from mpesa.services.c2b import c2b_confirmation_book, webhook_log_record
from pos.models import Product

DEMO_EMAIL_DOMAIN = "demo.kellyos.example"
DEMO_PRODUCTS = [
    ("Maize flour 2kg", "MF-2KG", "230.00"),
    ("Sugar 1kg", "SG-1KG", "199.00"),
    ("Milk 500ml", "MK-500", "65.00"),
    ("Bread 400g", "BR-400", "70.00"),
    ("Cooking oil 1L", "OIL-1L", "380.00"),
]
DEMO_LOCK_KEY = 4_201_001  # advisory lock: two loaders at once must not both book or both add an admin

# name, phone, invoices [(days ago, description, quantity, unit price)],
# payments [("invoice N" to pay the customer's Nth invoice, or "code" to pay by customer code, amount)]
DEMO_CUSTOMERS: list[tuple[str, str, list[tuple[int, str, str, str]], list[tuple[str, str]]]] = [
    (
        "Wanjiku Kamau",
        "0712345678",
        [(40, "School fees, Term 1", "1", "45000.00"), (10, "School bus, Term 1", "1", "6000.00")],
        [("invoice 0", "45000.00"), ("invoice 1", "2500.00")],  # one paid, one partly paid
    ),
    ("Otieno Hardware Ltd", "0722000111", [(45, "Cement 50kg", "20", "780.00")], []),  # unpaid, overdue
    ("Achieng Academy", "0110000222", [(5, "Exercise books (dozen)", "12", "540.00")], [("code", "7000.00")]),
    ("Mwangi Stores", "+254733444555", [(20, "Maize flour 2kg", "50", "230.00")], [("invoice 0", "4000.00")]),
    ("Kiprono Dairy", "254701999888", [], [("code", "3000.00")]),  # a prepayment, held as credit
]


class Command(BaseCommand):
    help = "Create an admin login if there is none and load demo customers, invoices and payments (once)."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [DEMO_LOCK_KEY])
            self._ensure_admin()
            self._ensure_cashier()
            if Customer.objects.filter(email__endswith=f"@{DEMO_EMAIL_DOMAIN}").exists():
                self.stdout.write("Demo data already loaded.")
                return
            self._load()
        self._pay_by_mpesa()
        self.stdout.write(
            f"Demo data loaded: {len(DEMO_CUSTOMERS)} customers with invoices, payments and credit."
        )

    def _load(self) -> None:
        today = timezone.localdate()
        receipt = 0
        for name, phone, invoice_specs, payment_specs in DEMO_CUSTOMERS:
            email = f"{name.split()[0].lower()}@{DEMO_EMAIL_DOMAIN}"
            customer = customer_create(name=name, phone=phone, email=email)
            invoices: list[Invoice] = [
                invoice_create(
                    customer=customer,
                    lines=[InvoiceLineInput(description=description, quantity=quantity, unit_price=price)],
                    issue_date=today - timedelta(days=days_ago),
                    due_date=today - timedelta(days=days_ago) + timedelta(days=30),
                    by=None,
                )
                for days_ago, description, quantity, price in invoice_specs
            ]
            for target, amount in payment_specs:
                receipt += 1
                reference = customer.code if target == "code" else invoices[int(target.split()[1])].number
                payment_receive(
                    amount=amount,
                    reference=reference.lower(),  # payers rarely type capitals
                    received_at=timezone.now(),
                    source="demo",
                    source_id=f"DEMO{receipt:06d}",
                )
            if name == "Mwangi Stores":
                invoice_void(invoice=invoices[0], reason="Goods returned unopened", by=None)
        journal_entry_post(
            memo="Till sale: 2 x maize flour 2kg",
            lines=[
                JournalLineInput(account=MPESA_CASH, debit=Decimal("460.00")),
                JournalLineInput(account=SALES_REVENUE, credit=Decimal("460.00")),
            ],
            cause_kind=CauseKind.DEMO,
        )

    def _pay_by_mpesa(self) -> None:
        """Two PayBill payments through the M-Pesa pipeline (which logs each callback in its own
        transaction): one for a customer, one nobody can place, held in suspense."""
        wanjiku = Customer.objects.get(email=f"wanjiku@{DEMO_EMAIL_DOMAIN}")
        for account, amount in [(wanjiku.code.lower(), 1000), ("shule", 1500)]:
            payload = c2b_payment_payload(
                shortcode=settings.MPESA_SHORTCODE, amount=amount, account=account, msisdn="254708374149"
            )
            body = json.dumps(payload).encode()
            log = webhook_log_record(kind=WebhookKind.C2B_CONFIRMATION, body=body, headers={}, source_ip=None)
            c2b_confirmation_book(log=log, payment=c2b_payment_parse(body))

    def _ensure_cashier(self) -> None:
        User = get_user_model()
        if User.objects.filter(groups__name="Cashier").exists():
            self.stdout.write("A cashier login already exists.")
            return
        password = secrets.token_urlsafe(9)
        cashier = User.objects.create_user(username="cashier", password=password)
        cashier.groups.add(Group.objects.get(name="Cashier"))
        self.stdout.write(
            self.style.SUCCESS(f"Cashier login created: username cashier, password {password} (/pos/)")
        )
        for name, sku, price in DEMO_PRODUCTS:
            Product.objects.get_or_create(sku=sku, defaults={"name": name, "price": Decimal(price)})

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
