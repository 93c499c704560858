"""What PostgreSQL itself refuses, proved by going around the Python services with raw SQL."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from ledger.chart import CUSTOMER_CREDIT, MPESA_CASH, SALES_REVENUE
from ledger.exceptions import TransactionRequiredError
from ledger.models import Account, AccountBalance, CauseKind, JournalEntry, JournalLine
from ledger.selectors import account_balance, customer_subledger_totals, ledger_verify
from ledger.services import JournalLineInput, journal_entry_post, journal_entry_reverse
from tests.customers.factories import CustomerFactory
from tests.ledger.factories import PostedEntryFactory, force_balance_drift, force_customer_balance_drift


def account_id(code):
    return Account.objects.get(code=code).pk


def raw_entry(cursor, memo="raw", reverses_id=None, reason=""):
    cursor.execute(
        "INSERT INTO ledger_journalentry"
        " (posted_at, memo, cause_kind, cause_id, reverses_id, reversal_reason, recorded_at)"
        " VALUES (now(), %s, 'manual', '', %s, %s, now()) RETURNING id",
        [memo, reverses_id, reason],
    )
    return cursor.fetchone()[0]


def raw_line(cursor, entry_id, code, debit="0", credit="0"):
    cursor.execute(
        "INSERT INTO ledger_journalline (entry_id, account_id, debit, credit, posted_at)"
        " VALUES (%s, %s, %s, %s, now())",
        [entry_id, account_id(code), debit, credit],
    )


@pytest.mark.django_db(transaction=True)
def test_unbalanced_entry_inserted_with_raw_sql_is_refused_at_commit():
    with (
        pytest.raises(IntegrityError, match="unbalanced"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        entry_id = raw_entry(cursor)
        raw_line(cursor, entry_id, MPESA_CASH, debit="100.00")
        raw_line(cursor, entry_id, SALES_REVENUE, credit="50.00")
    assert not JournalEntry.objects.exists()
    assert not JournalLine.objects.exists()
    assert not AccountBalance.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("line_count", [0, 1])
def test_entry_with_fewer_than_two_lines_is_refused_at_commit(line_count):
    with (
        pytest.raises(IntegrityError, match="at least two"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        entry_id = raw_entry(cursor)
        if line_count:
            raw_line(cursor, entry_id, MPESA_CASH, debit="100.00")
    assert not JournalEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_lines_cannot_be_added_to_a_committed_entry():
    entry = PostedEntryFactory(amount=Decimal("100.00"))
    with (
        pytest.raises(IntegrityError, match="already posted"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        raw_line(cursor, entry.pk, MPESA_CASH, debit="10.00")
        raw_line(cursor, entry.pk, SALES_REVENUE, credit="10.00")
    assert entry.lines.count() == 2
    assert account_balance(MPESA_CASH) == Decimal("100.00")


@pytest.mark.django_db(transaction=True)
def test_posting_outside_a_transaction_is_refused():
    with pytest.raises(TransactionRequiredError):
        journal_entry_post(
            memo="Forgot the transaction",
            lines=[
                JournalLineInput(account=MPESA_CASH, debit="1"),
                JournalLineInput(account=SALES_REVENUE, credit="1"),
            ],
            cause_kind=CauseKind.MANUAL,
        )
    assert not JournalEntry.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_journalline SET debit = debit + 1 WHERE debit > 0",
        "UPDATE ledger_journalline SET account_id = account_id",
        "DELETE FROM ledger_journalline",
        "UPDATE ledger_journalentry SET memo = 'edited'",
        "DELETE FROM ledger_journalentry",
    ],
)
def test_posted_rows_cannot_be_updated_or_deleted(statement):
    PostedEntryFactory(amount=Decimal("100.00"))
    with (
        pytest.raises(IntegrityError, match="immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert JournalLine.objects.filter(debit=Decimal("100.00")).count() == 1
    assert JournalEntry.objects.get().memo.startswith("Till sale")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_accountbalance SET debit_total = 0",
        "DELETE FROM ledger_accountbalance",
        "INSERT INTO ledger_accountbalance (account_id, stripe, debit_total, credit_total)"
        " SELECT id, 99, 1000, 0 FROM ledger_account LIMIT 1",
    ],
)
def test_balances_cannot_be_written_except_by_posting_lines(statement):
    PostedEntryFactory(amount=Decimal("100.00"))
    with (
        pytest.raises(IntegrityError, match="maintained from journal lines"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert account_balance(MPESA_CASH) == Decimal("100.00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_customerbalance SET credit_total = 0",
        "DELETE FROM ledger_customerbalance",
        "INSERT INTO ledger_customerbalance (customer_id, account_id, debit_total, credit_total)"
        " SELECT 999999, id, 1000, 0 FROM ledger_account LIMIT 1",
    ],
)
def test_customer_balances_cannot_be_written_except_by_posting_lines(statement):
    customer = CustomerFactory()
    PostedEntryFactory(amount=Decimal("100.00"), credit_account=CUSTOMER_CREDIT, customer_id=customer.pk)
    with (
        pytest.raises(IntegrityError, match="maintained from journal lines"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert customer_subledger_totals(customer_ids=[customer.pk], account_codes=[CUSTOMER_CREDIT]) == {
        (customer.pk, CUSTOMER_CREDIT): (Decimal("0.00"), Decimal("100.00"))
    }


@pytest.mark.django_db
def test_amounts_must_be_positive_and_on_one_side_only():
    entry = PostedEntryFactory()
    for debit, credit in [("-1", "0"), ("0", "0"), ("5", "5")]:
        with (
            pytest.raises(IntegrityError, match="one_side_positive"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            entry_id = raw_entry(cursor)
            raw_line(cursor, entry_id, MPESA_CASH, debit=debit, credit=credit)
    assert JournalEntry.objects.get() == entry


@pytest.mark.django_db(transaction=True)
def test_a_reversal_that_does_not_mirror_its_original_is_refused_at_commit():
    original = PostedEntryFactory(amount=Decimal("100.00"))
    with (
        pytest.raises(IntegrityError, match="does not exactly reverse"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        entry_id = raw_entry(cursor, reverses_id=original.pk, reason="fat finger")
        raw_line(cursor, entry_id, MPESA_CASH, credit="90.00")
        raw_line(cursor, entry_id, SALES_REVENUE, debit="90.00")
    assert JournalEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_database_allows_only_one_reversal_per_entry():
    original = PostedEntryFactory(amount=Decimal("100.00"))
    journal_entry_reverse(entry=original, reason="first", by=None)
    with (
        pytest.raises(IntegrityError, match="one_reversal_per_entry"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        entry_id = raw_entry(cursor, reverses_id=original.pk, reason="second, behind the service's back")
        raw_line(cursor, entry_id, MPESA_CASH, credit="100.00")
        raw_line(cursor, entry_id, SALES_REVENUE, debit="100.00")
    assert JournalEntry.objects.count() == 2
    assert account_balance(MPESA_CASH) == Decimal("0.00")
    assert ledger_verify()["is_valid"]


@pytest.mark.django_db
def test_ledger_verify_reports_balances_that_drifted_from_their_lines():
    PostedEntryFactory(amount=Decimal("100.00"))
    force_balance_drift(account_code=MPESA_CASH, debit="1")
    result = ledger_verify()
    assert result["is_valid"] is False
    assert result["errors"] == [
        "Account 1010: maintained balance (DR 101.00, CR 0.00) differs from its lines (DR 100.00, CR 0.00)."
    ]


@pytest.mark.django_db
def test_ledger_verify_reports_a_customer_balance_that_drifted_from_their_lines():
    customer = CustomerFactory()
    PostedEntryFactory(amount=Decimal("100.00"), credit_account=CUSTOMER_CREDIT, customer_id=customer.pk)
    force_customer_balance_drift(customer_id=customer.pk, account_code=CUSTOMER_CREDIT, credit="0.50")
    result = ledger_verify()
    assert result["is_valid"] is False
    # (The receivables checks also see credit no payment explains: this entry was posted raw.)
    assert (
        f"Customer {customer.pk} in account 2100: maintained balance (DR 0.00, CR 100.50) differs from "
        "their lines (DR 0.00, CR 100.00)."
    ) in result["errors"]


@pytest.mark.django_db(transaction=True)
def test_lines_added_after_an_early_check_are_still_checked_at_commit():
    with (
        pytest.raises(IntegrityError, match="unbalanced"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        entry_id = raw_entry(cursor)
        raw_line(cursor, entry_id, MPESA_CASH, debit="100.00")
        raw_line(cursor, entry_id, SALES_REVENUE, credit="100.00")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the entry is checked, and passes, here
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        raw_line(cursor, entry_id, MPESA_CASH, debit="900.00")
    assert not JournalEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_late_line_with_a_lower_id_is_still_checked_at_commit():
    # The lines' own check runs on an entry's highest line; a line given a lower id by hand after
    # that check has run is caught by the entry's full check at commit.
    with (
        pytest.raises(IntegrityError, match="unbalanced"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET CONSTRAINTS ledger_journalline_balanced IMMEDIATE")
        entry_id = raw_entry(cursor)
        cursor.execute(
            "INSERT INTO ledger_journalline (entry_id, account_id, debit, credit, posted_at)"
            " VALUES (%s, %s, 100, 0, now()), (%s, %s, 0, 100, now())",
            [entry_id, account_id(MPESA_CASH), entry_id, account_id(SALES_REVENUE)],
        )
        cursor.execute(
            "INSERT INTO ledger_journalline (id, entry_id, account_id, debit, credit, posted_at)"
            " VALUES (-1, %s, %s, 999, 0, now())",
            [entry_id, account_id(MPESA_CASH)],
        )
    assert not JournalEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_lines_added_to_an_entry_after_its_reversal_was_checked_are_refused_at_commit():
    with (
        pytest.raises(IntegrityError, match="does not exactly reverse"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        original_id = raw_entry(cursor)
        raw_line(cursor, original_id, MPESA_CASH, debit="100.00")
        raw_line(cursor, original_id, SALES_REVENUE, credit="100.00")
        reversal_id = raw_entry(cursor, reverses_id=original_id, reason="undo")
        raw_line(cursor, reversal_id, MPESA_CASH, credit="100.00")
        raw_line(cursor, reversal_id, SALES_REVENUE, debit="100.00")
        cursor.execute("SET CONSTRAINTS ledger_journalline_balanced IMMEDIATE")  # the lines' checks pass here
        cursor.execute("SET CONSTRAINTS ledger_journalline_balanced DEFERRED")
        raw_line(cursor, original_id, MPESA_CASH, debit="70.00")
        raw_line(cursor, original_id, SALES_REVENUE, credit="70.00")
    assert not JournalEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_temporary_tables_cannot_stand_in_for_the_ledger_inside_the_triggers():
    entry = PostedEntryFactory(amount=Decimal("100.00"))
    with (
        pytest.raises(IntegrityError, match="already posted"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        # A session's temp tables shadow same-named tables for unqualified names; the trigger
        # functions pin their search_path, so they still read the real entry.
        cursor.execute(
            "CREATE TEMP TABLE ledger_journalentry (id bigint, posted_at timestamptz, created_txid bigint,"
            " reverses_id bigint) ON COMMIT DROP"
        )
        cursor.execute("INSERT INTO ledger_journalentry VALUES (%s, now(), txid_current(), NULL)", [entry.pk])
        cursor.execute(
            "INSERT INTO public.ledger_journalline (entry_id, account_id, debit, credit, posted_at)"
            " VALUES (%s, %s, 1000000, 0, now())",
            [entry.pk, account_id(MPESA_CASH)],
        )
    assert entry.lines.count() == 2
    assert ledger_verify()["is_valid"]


@pytest.mark.django_db
def test_entries_cannot_be_dated_in_the_future():
    with pytest.raises(IntegrityError, match="future"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_journalentry"
            " (posted_at, memo, cause_kind, cause_id, reversal_reason, recorded_at)"
            " VALUES (now() + interval '1 day', 'tomorrow', 'manual', '', '', now())"
        )


@pytest.mark.django_db
def test_a_reversal_cannot_be_dated_before_its_original_nor_reverse_a_later_entry():
    original = PostedEntryFactory(amount=Decimal("100.00"))
    with (
        pytest.raises(IntegrityError, match="dated before"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        raw_entry_at(cursor, "now() - interval '30 days'", reverses_id=original.pk)
    with (
        pytest.raises(IntegrityError, match="reverses_an_earlier_entry"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO ledger_journalentry"
            " (id, posted_at, memo, cause_kind, cause_id, reverses_id, reversal_reason, recorded_at)"
            " VALUES (%s, now() + interval '1 minute', 'x', 'reversal', '', %s, 'cycle', now())",
            [original.pk - 1, original.pk],
        )
    assert JournalEntry.objects.count() == 1


def raw_entry_at(cursor, posted_at_sql, reverses_id):
    cursor.execute(
        "INSERT INTO ledger_journalentry"
        " (posted_at, memo, cause_kind, cause_id, reverses_id, reversal_reason, recorded_at)"
        f" VALUES ({posted_at_sql}, 'x', 'reversal', '', %s, 'back-dated', now())",
        [reverses_id],
    )


@pytest.mark.django_db
def test_ledger_verify_notices_rows_written_with_the_triggers_switched_off():
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE ledger_journalentry DISABLE TRIGGER ledger_journalentry_stamp")
        cursor.execute("ALTER TABLE ledger_journalline DISABLE TRIGGER ledger_journalline_prepare")
        entry_id = raw_entry(cursor)
        raw_line(cursor, entry_id, MPESA_CASH, debit="5.00")
        raw_line(cursor, entry_id, SALES_REVENUE, credit="5.00")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE waits for no queued checks
        cursor.execute("ALTER TABLE ledger_journalentry ENABLE ALWAYS TRIGGER ledger_journalentry_stamp")
        cursor.execute("ALTER TABLE ledger_journalline ENABLE ALWAYS TRIGGER ledger_journalline_prepare")
    assert ledger_verify()["errors"] == [
        f"Journal entry {entry_id} was written with the ledger triggers switched off."
    ]
