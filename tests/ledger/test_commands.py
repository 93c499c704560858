from decimal import Decimal

import pytest
from django.core.management import ManagementUtility, call_command

from customers.models import Customer
from customers.selectors import customer_positions
from invoices.models import Invoice, InvoiceStatus, Payment
from ledger.chart import MPESA_CASH
from mpesa.models import MpesaReceipt
from tests.ledger.factories import PostedEntryFactory, force_balance_drift

pytestmark = pytest.mark.django_db


def run_manage(*args):
    """Run a command the way `python manage.py` does, returning its exit status."""
    try:
        ManagementUtility(["manage.py", *args]).execute()
    except SystemExit as exit_:
        return exit_.code
    return 0


def test_ledger_verify_passes_on_honest_books(capsys):
    PostedEntryFactory(amount=Decimal("100.00"))
    assert run_manage("ledger_verify") == 0
    assert "Ledger valid" in capsys.readouterr().out


def test_ledger_verify_exits_1_and_names_the_problem_when_books_drift(capsys):
    PostedEntryFactory(amount=Decimal("100.00"))
    force_balance_drift(account_code=MPESA_CASH, credit="5")
    assert run_manage("ledger_verify") == 1
    err = capsys.readouterr().err
    assert "Account 1010" in err and "INVALID" in err


def test_demo_load_is_idempotent_and_covers_every_invoice_status(capsys):
    call_command("demo_load")
    first = capsys.readouterr().out
    call_command("demo_load")
    second = capsys.readouterr().out
    assert "Admin login created: username admin" in first
    assert "Cashier login created: username cashier" in first
    assert "already exists" in second and "already loaded" in second
    assert set(Invoice.objects.values_list("status", flat=True)) == set(InvoiceStatus.values)
    positions = customer_positions(list(Customer.objects.values_list("pk", flat=True)))
    assert any(position.credit > 0 for position in positions.values())
    assert Payment.objects.count() == 6  # five receivables demo payments and one M-Pesa receipt
    assert MpesaReceipt.objects.filter(status="UNALLOCATED").count() == 1
    assert run_manage("ledger_verify") == 0
