from decimal import Decimal

import pytest
from django.core.management import ManagementUtility, call_command

from ledger.chart import MPESA_CASH
from ledger.models import JournalEntry
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


def test_demo_load_is_idempotent(capsys):
    call_command("demo_load")
    first = capsys.readouterr().out
    call_command("demo_load")
    second = capsys.readouterr().out
    assert "Admin login created: username admin" in first
    assert "already exists" in second
    assert JournalEntry.objects.filter(cause_kind="demo").count() == 4
    assert run_manage("ledger_verify") == 0
