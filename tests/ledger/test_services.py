from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.utils import timezone

from ledger.chart import (
    COST_OF_GOODS_SOLD,
    CUSTOMER_CREDIT,
    MPESA_CASH,
    SALES_REVENUE,
)
from ledger.exceptions import (
    EntryAlreadyReversedError,
    InvalidJournalEntryError,
    UnknownAccountError,
)
from ledger.models import Account, AccountBalance, CauseKind, JournalEntry, JournalLine
from ledger.selectors import (
    account_balance,
    customer_subledger_totals,
    general_ledger,
    ledger_verify,
    trial_balance,
)
from ledger.services import JournalLineInput, journal_entry_post, journal_entry_reverse
from tests.customers.factories import CustomerFactory
from tests.factories import UserFactory
from tests.ledger.conftest import ACCRUED_EXPENSES
from tests.ledger.factories import PostedEntryFactory, customer_balances

pytestmark = pytest.mark.django_db

NAIROBI = ZoneInfo("Africa/Nairobi")


def post(memo, *lines, **kwargs):
    with transaction.atomic():
        return journal_entry_post(memo=memo, lines=list(lines), cause_kind=CauseKind.MANUAL, **kwargs)


def nothing_written():
    return (
        not JournalEntry.objects.exists()
        and not JournalLine.objects.exists()
        and not AccountBalance.objects.exists()
    )


def test_a_till_day_with_a_suspense_receipt_keeps_every_balance_right():
    # Given two M-Pesa till sales and a payment nobody can place yet
    post(
        "Till sales, morning",
        JournalLineInput(account=MPESA_CASH, debit="45000.00"),
        JournalLineInput(account=SALES_REVENUE, credit="45000.00"),
    )
    post(
        "M-Pesa RKT1 with an unknown account number",
        JournalLineInput(account=MPESA_CASH, debit="5000.00"),
        JournalLineInput(account=ACCRUED_EXPENSES, credit="5000.00"),
    )
    # When the clerk identifies 3,000 of it as a sale, and the shop pays 20,000 for stock sold
    post(
        "RKT1 identified: till sale",
        JournalLineInput(account=ACCRUED_EXPENSES, debit="3000.00"),
        JournalLineInput(account=SALES_REVENUE, credit="3000.00"),
    )
    post(
        "Stock sold today",
        JournalLineInput(account=COST_OF_GOODS_SOLD, debit="20000.00"),
        JournalLineInput(account=MPESA_CASH, credit="20000.00"),
    )
    # Then
    assert account_balance(MPESA_CASH) == Decimal("30000.00")
    assert account_balance(ACCRUED_EXPENSES) == Decimal("2000.00")
    assert account_balance(SALES_REVENUE) == Decimal("48000.00")
    assert account_balance(COST_OF_GOODS_SOLD) == Decimal("20000.00")
    tb = trial_balance()
    assert tb.is_balanced
    assert tb.total_debit == tb.total_credit == Decimal("50000.00")
    by_code = {row.code: row for row in tb.rows}
    assert by_code[MPESA_CASH].debit == Decimal("30000.00")
    assert by_code[ACCRUED_EXPENSES].credit == Decimal("2000.00")
    assert ledger_verify() == {"is_valid": True, "errors": []}


def test_posting_records_who_why_and_what_caused_it():
    accountant = UserFactory()
    entry = post(
        "Till sale",
        JournalLineInput(account=MPESA_CASH, debit=Decimal("460.00")),
        JournalLineInput(account=SALES_REVENUE, credit=Decimal("460.00")),
        by=accountant,
        cause_id="S-0001",
    )
    entry.refresh_from_db()
    assert entry.posted_by == accountant
    assert entry.cause_kind == CauseKind.MANUAL and entry.cause_id == "S-0001"
    assert entry.created_txid is not None
    assert [
        (line.account.code, line.debit, line.credit) for line in entry.lines.order_by("account__code")
    ] == [
        (MPESA_CASH, Decimal("460.00"), Decimal("0.00")),
        (SALES_REVENUE, Decimal("0.00"), Decimal("460.00")),
    ]
    assert all(line.posted_at == entry.posted_at for line in entry.lines.all())


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            [
                JournalLineInput(account=MPESA_CASH, debit="100.00"),
                JournalLineInput(account=SALES_REVENUE, credit="99.99"),
            ],
            "Unbalanced",
        ),
        ([JournalLineInput(account=MPESA_CASH, debit="100.00")], "at least two lines"),
        (
            [
                JournalLineInput(account=MPESA_CASH, debit=100.0),
                JournalLineInput(account=SALES_REVENUE, credit="100"),
            ],
            "not float",
        ),
        (
            [
                JournalLineInput(account=MPESA_CASH, debit="10.005"),
                JournalLineInput(account=SALES_REVENUE, credit="10.005"),
            ],
            "two decimal places",
        ),
        (
            [
                JournalLineInput(account=MPESA_CASH, debit="10", credit="10"),
                JournalLineInput(account=SALES_REVENUE, credit="0"),
            ],
            "either a debit or a credit",
        ),
        (
            [
                JournalLineInput(account=MPESA_CASH, debit="-5"),
                JournalLineInput(account=SALES_REVENUE, credit="-5"),
            ],
            "positive",
        ),
        (
            [
                JournalLineInput(account=MPESA_CASH, debit="0"),
                JournalLineInput(account=SALES_REVENUE, credit="0"),
            ],
            "either a debit or a credit",
        ),
    ],
)
def test_bad_entries_are_refused_with_a_clear_error_and_nothing_is_written(lines, message):
    with pytest.raises(InvalidJournalEntryError, match=message):
        post("Bad entry", *lines)
    assert nothing_written()


def test_unknown_and_closed_accounts_are_refused():
    with pytest.raises(UnknownAccountError, match="9999"):
        post(
            "x",
            JournalLineInput(account="9999", debit="1"),
            JournalLineInput(account=SALES_REVENUE, credit="1"),
        )
    Account.objects.filter(code=ACCRUED_EXPENSES).update(is_active=False)
    with pytest.raises(InvalidJournalEntryError, match="closed"):
        post(
            "x",
            JournalLineInput(account=MPESA_CASH, debit="1"),
            JournalLineInput(account=ACCRUED_EXPENSES, credit="1"),
        )
    assert nothing_written()


def test_a_failure_later_in_the_business_operation_leaves_nothing_posted():
    with pytest.raises(RuntimeError), transaction.atomic():
        journal_entry_post(
            memo="Sale that fails after posting",
            lines=[
                JournalLineInput(account=MPESA_CASH, debit="50"),
                JournalLineInput(account=SALES_REVENUE, credit="50"),
            ],
            cause_kind=CauseKind.SALE,
        )
        raise RuntimeError("the receipt printer exploded")
    assert nothing_written()
    assert account_balance(MPESA_CASH) == Decimal("0.00")


def test_reversal_nets_to_zero_and_keeps_the_original():
    accountant = UserFactory()
    original = PostedEntryFactory(
        amount=Decimal("1500.00"), debit_account=MPESA_CASH, credit_account=SALES_REVENUE
    )
    reversal = journal_entry_reverse(entry=original, reason="Keyed against the wrong account", by=accountant)
    assert reversal.reverses == original
    assert reversal.reversal_reason == "Keyed against the wrong account"
    assert reversal.cause_kind == CauseKind.REVERSAL
    assert reversal.posted_by == accountant
    assert account_balance(MPESA_CASH) == Decimal("0.00")
    assert account_balance(SALES_REVENUE) == Decimal("0.00")
    assert JournalEntry.objects.count() == 2  # the original is still there, unchanged
    assert sorted((line.account.code, line.debit, line.credit) for line in reversal.lines.all()) == [
        (MPESA_CASH, Decimal("0.00"), Decimal("1500.00")),
        (SALES_REVENUE, Decimal("1500.00"), Decimal("0.00")),
    ]
    assert ledger_verify()["is_valid"]


def test_an_entry_is_reversed_at_most_once():
    original = PostedEntryFactory()
    journal_entry_reverse(entry=original, reason="Duplicate", by=None)
    with pytest.raises(EntryAlreadyReversedError):
        journal_entry_reverse(entry=original, reason="Duplicate again", by=None)
    assert JournalEntry.objects.count() == 2
    assert account_balance(MPESA_CASH) == Decimal("0.00")


def test_a_reversal_needs_a_reason():
    original = PostedEntryFactory()
    with pytest.raises(InvalidJournalEntryError, match="reason"):
        journal_entry_reverse(entry=original, reason="   ", by=None)
    assert JournalEntry.objects.count() == 1


def test_a_reversal_cannot_be_dated_before_its_original():
    original = PostedEntryFactory(posted_at=datetime(2026, 5, 2, 10, 0, tzinfo=NAIROBI))
    with pytest.raises(InvalidJournalEntryError, match="before the entry it reverses"):
        journal_entry_reverse(
            entry=original, reason="x", by=None, posted_at=datetime(2026, 5, 1, tzinfo=NAIROBI)
        )
    assert JournalEntry.objects.count() == 1


def test_entries_cannot_be_dated_in_the_future():
    with pytest.raises(InvalidJournalEntryError, match="future"):
        PostedEntryFactory(posted_at=datetime.now(tz=NAIROBI) + timedelta(days=1))
    assert nothing_written()


def test_what_was_posted_to_a_closed_account_can_still_be_reversed():
    original = PostedEntryFactory(debit_account=MPESA_CASH, credit_account=ACCRUED_EXPENSES)
    Account.objects.filter(code=ACCRUED_EXPENSES).update(is_active=False)
    journal_entry_reverse(entry=original, reason="Suspense account retired", by=None)
    assert account_balance(ACCRUED_EXPENSES) == Decimal("0.00")


def test_days_are_nairobi_business_days_whatever_time_zone_is_active():
    PostedEntryFactory(amount=Decimal("10.00"), posted_at=datetime(2026, 3, 1, 1, 30, tzinfo=NAIROBI))
    with timezone.override(ZoneInfo("UTC")):  # 01:30 Nairobi is still 28 February in UTC
        assert account_balance(MPESA_CASH, as_of=date(2026, 2, 28)) == Decimal("0.00")
        assert account_balance(MPESA_CASH, as_of=date(2026, 3, 1)) == Decimal("10.00")


def test_reversal_keeps_the_customer_sub_ledger():
    customer = CustomerFactory()
    original = PostedEntryFactory(
        debit_account=MPESA_CASH, credit_account=ACCRUED_EXPENSES, customer_id=customer.pk
    )
    reversal = journal_entry_reverse(entry=original, reason="Suggested customer was wrong", by=None)
    assert set(reversal.lines.values_list("customer_id", flat=True)) == {customer.pk}


def test_customer_balances_follow_every_posting_and_reversal():
    """The maintained sub-ledger rows a payment reads equal the sums of the customer's lines."""
    first, second = CustomerFactory(), CustomerFactory()
    with transaction.atomic():
        journal_entry_post(
            memo="Two customers' credit in one entry",
            lines=[
                JournalLineInput(account=MPESA_CASH, debit=Decimal("350.00")),
                JournalLineInput(account=CUSTOMER_CREDIT, credit=Decimal("100.00"), customer_id=first.pk),
                JournalLineInput(account=CUSTOMER_CREDIT, credit=Decimal("200.00"), customer_id=second.pk),
                JournalLineInput(account=CUSTOMER_CREDIT, credit=Decimal("50.00"), customer_id=first.pk),
            ],
            cause_kind=CauseKind.MANUAL,
            cause_id="",
        )
    later = PostedEntryFactory(
        amount=Decimal("40.00"), debit_account=CUSTOMER_CREDIT, credit_account=MPESA_CASH, customer_id=None
    )
    refund = PostedEntryFactory(
        amount=Decimal("30.00"), debit_account=CUSTOMER_CREDIT, credit_account=SALES_REVENUE,
        customer_id=second.pk,
    )  # fmt: skip
    journal_entry_reverse(entry=refund, reason="Refunded in error", by=None)

    assert customer_balances() == {
        (first.pk, CUSTOMER_CREDIT): (Decimal("0.00"), Decimal("150.00")),
        (second.pk, CUSTOMER_CREDIT): (Decimal("30.00"), Decimal("230.00")),
        (second.pk, SALES_REVENUE): (Decimal("30.00"), Decimal("30.00")),
    }
    assert later.lines.filter(customer_id__isnull=False).count() == 0
    # (The receivables checks object to credit no payment explains: these entries were posted raw.)
    assert [error for error in ledger_verify()["errors"] if "maintained balance" in error] == []
    assert customer_subledger_totals(customer_ids=[first.pk, second.pk], account_codes=[CUSTOMER_CREDIT]) == {
        (first.pk, CUSTOMER_CREDIT): (Decimal("0.00"), Decimal("150.00")),
        (second.pk, CUSTOMER_CREDIT): (Decimal("30.00"), Decimal("230.00")),
    }


def test_balances_as_of_a_moment_and_a_day():
    day1 = datetime(2026, 3, 1, 9, 0, tzinfo=NAIROBI)
    PostedEntryFactory(amount=Decimal("100.00"), posted_at=day1)
    PostedEntryFactory(amount=Decimal("250.00"), posted_at=day1 + timedelta(hours=14))  # 23:00 the same day
    PostedEntryFactory(amount=Decimal("1000.00"), posted_at=day1 + timedelta(days=1))
    assert account_balance(MPESA_CASH) == Decimal("1350.00")
    assert account_balance(MPESA_CASH, as_of=date(2026, 2, 28)) == Decimal("0.00")
    assert account_balance(MPESA_CASH, as_of=date(2026, 3, 1)) == Decimal("350.00")
    assert account_balance(MPESA_CASH, as_of=day1) == Decimal("100.00")
    assert account_balance(SALES_REVENUE, as_of=day1 + timedelta(hours=1)) == Decimal("100.00")
    tb = trial_balance(as_of=date(2026, 3, 1))
    assert tb.total_debit == tb.total_credit == Decimal("350.00")


def test_general_ledger_runs_a_balance_from_the_opening():
    day = datetime(2026, 4, 10, 12, 0, tzinfo=NAIROBI)
    PostedEntryFactory(amount=Decimal("500.00"), posted_at=day - timedelta(days=5), memo="Before the period")
    PostedEntryFactory(amount=Decimal("200.00"), posted_at=day, memo="Sale A")
    reversed_sale = PostedEntryFactory(
        amount=Decimal("80.00"), posted_at=day + timedelta(days=1), memo="Sale B"
    )
    journal_entry_reverse(
        entry=reversed_sale, reason="Customer cancelled", by=None, posted_at=day + timedelta(days=2)
    )
    PostedEntryFactory(amount=Decimal("999.00"), posted_at=day + timedelta(days=30), memo="After the period")

    gl = general_ledger(account=MPESA_CASH, start=date(2026, 4, 10), end=date(2026, 4, 30))
    assert gl.opening_balance == Decimal("500.00")
    assert [(line.memo, line.debit, line.credit, line.balance) for line in gl.lines] == [
        ("Sale A", Decimal("200.00"), Decimal("0.00"), Decimal("700.00")),
        ("Sale B", Decimal("80.00"), Decimal("0.00"), Decimal("780.00")),
        (f"Reversal of JE-{reversed_sale.pk}: Sale B", Decimal("0.00"), Decimal("80.00"), Decimal("700.00")),
    ]
    assert gl.closing_balance == Decimal("700.00")


def test_credit_normal_accounts_read_positive_on_their_own_side():
    PostedEntryFactory(amount=Decimal("75.00"), debit_account=MPESA_CASH, credit_account=ACCRUED_EXPENSES)
    assert account_balance(ACCRUED_EXPENSES) == Decimal("75.00")
    row = next(r for r in trial_balance().rows if r.code == ACCRUED_EXPENSES)
    assert (row.debit, row.credit) == (Decimal("0.00"), Decimal("75.00"))
