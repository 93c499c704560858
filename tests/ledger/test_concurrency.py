"""Real threads with their own database connections posting at the same moment."""

import threading
from decimal import Decimal

import pytest
from django.db import transaction

from ledger.chart import MPESA_CASH, SALES_REVENUE
from ledger.exceptions import EntryAlreadyReversedError
from ledger.models import AccountBalance, CauseKind, JournalEntry
from ledger.selectors import account_balance, ledger_verify, trial_balance
from ledger.services import JournalLineInput, journal_entry_post, journal_entry_reverse
from tests.ledger.conftest import ACCRUED_EXPENSES
from tests.ledger.factories import PostedEntryFactory
from tests.threads import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)


def test_many_threads_posting_to_the_same_accounts_keep_balances_equal_to_the_lines():
    threads, per_thread = 8, 25

    def work(index):
        for n in range(per_thread):
            amount = Decimal(f"{index + 1}.{n:02d}")
            with transaction.atomic():
                journal_entry_post(
                    memo=f"M-Pesa payment {index}-{n}",
                    lines=[
                        JournalLineInput(account=MPESA_CASH, debit=amount),
                        JournalLineInput(account=SALES_REVENUE, credit=amount - Decimal("0.50")),
                        JournalLineInput(account=ACCRUED_EXPENSES, credit=Decimal("0.50")),
                    ],
                    cause_kind=CauseKind.RECEIPT,
                )

    _, errors = run_in_threads(threads, work)
    assert errors == []
    expected = sum(Decimal(f"{i + 1}.{n:02d}") for i in range(threads) for n in range(per_thread))
    assert JournalEntry.objects.count() == threads * per_thread
    assert account_balance(MPESA_CASH) == expected
    assert account_balance(SALES_REVENUE) == expected - Decimal("0.50") * threads * per_thread
    assert account_balance(ACCRUED_EXPENSES) == Decimal("0.50") * threads * per_thread
    assert trial_balance().is_balanced
    assert ledger_verify() == {"is_valid": True, "errors": []}
    # The payments spread over several balance rows instead of queueing on one.
    assert AccountBalance.objects.filter(account__code=MPESA_CASH).count() > 1


def test_concurrent_reversals_of_one_entry_post_exactly_one():
    original = PostedEntryFactory(
        amount=Decimal("2500.00"), debit_account=MPESA_CASH, credit_account=SALES_REVENUE
    )

    def work(index):
        return journal_entry_reverse(entry=original, reason=f"clerk {index}", by=None)

    results, errors = run_in_threads(6, work)
    assert len(results) == 1
    assert len(errors) == 5 and all(isinstance(e, EntryAlreadyReversedError) for e in errors)
    assert JournalEntry.objects.filter(reverses=original).count() == 1
    assert account_balance(MPESA_CASH) == Decimal("0.00")
    assert ledger_verify()["is_valid"]


def test_transactions_posting_several_entries_in_opposite_account_orders_do_not_deadlock():
    # T1 books cost of a sale then pays it; T2 a suspense receipt then its allocation. Each takes its
    # accounts in a different order across statements; each transaction holds its own balance stripe.
    plans = [
        [("5000", "4000"), ("1010", "5000")],
        [("1010", "2900"), ("2900", "4000")],
    ]
    rounds = 10
    barrier = threading.Barrier(len(plans))

    def work(index):
        for _ in range(rounds):
            with transaction.atomic():
                for step, (debit_account, credit_account) in enumerate(plans[index]):
                    journal_entry_post(
                        memo=f"plan {index} step {step}",
                        lines=[
                            JournalLineInput(account=debit_account, debit="10.00"),
                            JournalLineInput(account=credit_account, credit="10.00"),
                        ],
                        cause_kind=CauseKind.MANUAL,
                    )
                    barrier.wait(timeout=10)

    _, errors = run_in_threads(len(plans), work)
    assert errors == []
    assert JournalEntry.objects.count() == rounds * 4
    assert ledger_verify()["is_valid"]
