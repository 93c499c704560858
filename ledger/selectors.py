"""Reading the ledger: balances, trial balance, general ledger and the integrity check.

Current balances come from the striped balance rows (a few rows per account, however long the
ledger). A balance as of an earlier moment is the current one less the lines posted after it, so it
costs in proportion to the activity since then, through the (account, posted_at) index. Both parts
are read in one SQL statement, so a payment committing meanwhile is either wholly in or wholly out.
Days are business days in settings.TIME_ZONE (Nairobi), whatever time zone is active.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet, Sum
from django.utils import timezone

from kellyos.db import row_first, rows_fetch
from kellyos.money import ZERO
from ledger.exceptions import UnknownAccountError
from ledger.models import Account, JournalLine, PeriodLock

Moment = date | datetime


@dataclass(frozen=True)
class TrialBalanceRow:
    code: str
    name: str
    type: str
    debit: Decimal
    credit: Decimal


@dataclass(frozen=True)
class TrialBalance:
    as_of: Moment | None
    rows: list[TrialBalanceRow]
    total_debit: Decimal
    total_credit: Decimal

    @property
    def is_balanced(self) -> bool:
        return self.total_debit == self.total_credit


@dataclass(frozen=True)
class GeneralLedgerLine:
    entry_id: int
    posted_at: datetime
    memo: str
    debit: Decimal
    credit: Decimal
    balance: Decimal


@dataclass
class GeneralLedger:
    account: Account
    start: date
    end: date
    opening_balance: Decimal
    lines: list[GeneralLedgerLine] = field(default_factory=list)
    closing_balance: Decimal = ZERO


def account_get(code: str) -> Account:
    try:
        return Account.objects.get(code=code)
    except Account.DoesNotExist as exc:
        raise UnknownAccountError(f"No account with code {code!r}.") from exc


def account_list_with_totals() -> QuerySet[Account]:
    """Accounts annotated with their current debit and credit totals, in one query."""
    return Account.objects.annotate(
        debit_total=Sum("balance_stripes__debit_total", default=ZERO),
        credit_total=Sum("balance_stripes__credit_total", default=ZERO),
    )


def account_balance(code: str, *, as_of: Moment | None = None) -> Decimal:
    """The balance of account `code` on its normal side, now or at the end of `as_of`."""
    account = account_get(code)
    debit, credit = _totals_by_account(as_of=as_of, account_id=account.pk).get(account.pk, (ZERO, ZERO))
    return account.signed(debit=debit, credit=credit)


def trial_balance(*, as_of: Moment | None = None) -> TrialBalance:
    """Every account's balance in a debit or credit column; the two columns must agree."""
    totals = _totals_by_account(as_of=as_of)
    rows = []
    for account in Account.objects.all():
        debit, credit = totals.get(account.pk, (ZERO, ZERO))
        net = debit - credit
        rows.append(
            TrialBalanceRow(
                code=account.code,
                name=account.name,
                type=account.type,
                debit=net if net > 0 else ZERO,
                credit=-net if net < 0 else ZERO,
            )
        )
    return TrialBalance(
        as_of=as_of,
        rows=rows,
        total_debit=sum((r.debit for r in rows), ZERO),
        total_credit=sum((r.credit for r in rows), ZERO),
    )


def general_ledger(*, account: str, start: date, end: date) -> GeneralLedger:
    """One account's lines between two dates (inclusive), with opening, running and closing balances."""
    account_row = account_get(account)
    opening = account_balance(account, as_of=start - timedelta(days=1))
    ledger = GeneralLedger(account=account_row, start=start, end=end, opening_balance=opening)
    running = opening
    lines = (
        JournalLine.objects.filter(
            account=account_row,
            posted_at__gte=_start_of_day(start),
            posted_at__lt=_start_of_day(end + timedelta(days=1)),
        )
        .select_related("entry")
        .order_by("posted_at", "entry_id", "id")
    )
    for line in lines:
        running += account_row.signed(debit=line.debit, credit=line.credit)
        ledger.lines.append(
            GeneralLedgerLine(
                entry_id=line.entry_id,
                posted_at=line.posted_at,
                memo=line.entry.memo,
                debit=line.debit,
                credit=line.credit,
                balance=running,
            )
        )
    ledger.closing_balance = running
    return ledger


# Checks that apps above the ledger add (invoices: receivables agree with the sub-ledgers). The
# ledger knows them only as functions returning problems, so it depends on none of those apps.
_registered_checks: list[Callable[[], list[str]]] = []


def ledger_check_register(check: Callable[[], list[str]]) -> None:
    """Add a check to ledger_verify (called from an AppConfig.ready()). Idempotent."""
    if check not in _registered_checks:
        _registered_checks.append(check)


def ledger_verify() -> dict[str, Any]:
    """Prove the books: every entry balanced with two or more lines, debits = credits overall, the
    maintained balances (accounts' and customers') equal to the sums of the lines, every reversal
    netting its original to zero, and whatever the apps above have registered. Reads the whole
    ledger; meant for operators and scheduled checks, not for request paths."""
    errors: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT e.id, count(l.id), coalesce(sum(l.debit), 0), coalesce(sum(l.credit), 0)
              FROM ledger_journalentry e LEFT JOIN ledger_journalline l ON l.entry_id = e.id
             GROUP BY e.id
            HAVING count(l.id) < 2 OR coalesce(sum(l.debit), 0) <> coalesce(sum(l.credit), 0)
             ORDER BY e.id
            """
        )
        errors += [
            f"Journal entry {entry_id} is unbalanced or incomplete: "
            f"{count} lines, debits {debit}, credits {credit}."
            for entry_id, count, debit, credit in cursor.fetchall()
        ]
        cursor.execute("SELECT coalesce(sum(debit), 0), coalesce(sum(credit), 0) FROM ledger_journalline")
        total_debit, total_credit = cursor.fetchone()
        if total_debit != total_credit:
            errors.append(f"Total debits {total_debit} <> total credits {total_credit}.")
        cursor.execute(
            """
            SELECT a.code, coalesce(l.debit, 0), coalesce(l.credit, 0),
                   coalesce(b.debit, 0), coalesce(b.credit, 0)
              FROM ledger_account a
              LEFT JOIN (SELECT account_id, sum(debit) AS debit, sum(credit) AS credit
                           FROM ledger_journalline GROUP BY account_id) l ON l.account_id = a.id
              LEFT JOIN (SELECT account_id, sum(debit_total) AS debit, sum(credit_total) AS credit
                           FROM ledger_accountbalance GROUP BY account_id) b ON b.account_id = a.id
             WHERE coalesce(l.debit, 0) <> coalesce(b.debit, 0)
                OR coalesce(l.credit, 0) <> coalesce(b.credit, 0)
             ORDER BY a.code
            """
        )
        errors += [
            f"Account {code}: maintained balance (DR {kept_debit}, CR {kept_credit}) differs from its lines "
            f"(DR {line_debit}, CR {line_credit})."
            for code, line_debit, line_credit, kept_debit, kept_credit in cursor.fetchall()
        ]
        cursor.execute(
            """
            SELECT customer_id, a.code, coalesce(l.debit, 0), coalesce(l.credit, 0),
                   coalesce(b.debit_total, 0), coalesce(b.credit_total, 0)
              FROM (SELECT customer_id, account_id, sum(debit) AS debit, sum(credit) AS credit
                      FROM ledger_journalline WHERE customer_id IS NOT NULL
                     GROUP BY customer_id, account_id) l
              FULL JOIN ledger_customerbalance b USING (customer_id, account_id)
              JOIN ledger_account a ON a.id = coalesce(l.account_id, b.account_id)
             WHERE coalesce(l.debit, 0) <> coalesce(b.debit_total, 0)
                OR coalesce(l.credit, 0) <> coalesce(b.credit_total, 0)
             ORDER BY customer_id, a.code
            """
        )
        errors += [
            f"Customer {customer_id} in account {code}: maintained balance (DR {kept_debit}, CR "
            f"{kept_credit}) differs from their lines (DR {line_debit}, CR {line_credit})."
            for customer_id, code, line_debit, line_credit, kept_debit, kept_credit in cursor.fetchall()
        ]
        cursor.execute(
            """
            SELECT DISTINCT r.id, r.reverses_id
              FROM ledger_journalentry r
              JOIN ledger_journalline l ON l.entry_id IN (r.id, r.reverses_id)
             WHERE r.reverses_id IS NOT NULL
             GROUP BY r.id, r.reverses_id, l.account_id, l.customer_id
            HAVING sum(l.debit - l.credit) <> 0
             ORDER BY r.id
            """
        )
        errors += [
            f"Journal entry {reversal_id} does not exactly reverse entry {original_id}."
            for reversal_id, original_id in cursor.fetchall()
        ]
        cursor.execute(
            """
            SELECT r.id, r.reverses_id
              FROM ledger_journalentry r JOIN ledger_journalentry o ON o.id = r.reverses_id
             WHERE r.posted_at < o.posted_at OR r.reverses_id >= r.id
             ORDER BY r.id
            """
        )
        errors += [
            f"Journal entry {reversal_id} is dated or numbered before entry {original_id}, which it reverses."
            for reversal_id, original_id in cursor.fetchall()
        ]
        # Rows without the stamp the insert trigger always sets got in with the triggers switched off.
        cursor.execute("SELECT id FROM ledger_journalentry WHERE created_txid IS NULL ORDER BY id")
        errors += [
            f"Journal entry {entry_id} was written with the ledger triggers switched off."
            for (entry_id,) in cursor.fetchall()
        ]
    for check in _registered_checks:
        errors += check()
    return {"is_valid": not errors, "errors": errors}


def _totals_by_account(
    *, as_of: Moment | None, account_id: int | None = None
) -> dict[int, tuple[Decimal, Decimal]]:
    """Debit and credit totals per account: the stripes, less the lines after `as_of`, in one statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT account_id, sum(debit), sum(credit) FROM (
                SELECT account_id, debit_total AS debit, credit_total AS credit FROM ledger_accountbalance
                 WHERE %(account_id)s::bigint IS NULL OR account_id = %(account_id)s
                UNION ALL
                SELECT account_id, -debit, -credit FROM ledger_journalline
                 WHERE %(cutoff)s::timestamptz IS NOT NULL AND posted_at >= %(cutoff)s
                   AND (%(account_id)s::bigint IS NULL OR account_id = %(account_id)s)
            ) movements
            GROUP BY account_id
            """,
            {"account_id": account_id, "cutoff": None if as_of is None else _first_moment_after(as_of)},
        )
        return {row[0]: (row[1], row[2]) for row in cursor.fetchall()}


def _first_moment_after(as_of: Moment) -> datetime:
    """The earliest instant not included in "as of": just after that instant, or the next midnight."""
    if isinstance(as_of, datetime):
        if timezone.is_naive(as_of):
            raise ValueError("as_of must be timezone-aware.")
        return as_of + timedelta(microseconds=1)  # PostgreSQL timestamps resolve to the microsecond
    return _start_of_day(as_of + timedelta(days=1))


def _start_of_day(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(settings.TIME_ZONE))


def customer_subledger_totals(
    *, customer_ids: list[int], account_codes: list[str]
) -> dict[tuple[int, str], tuple[Decimal, Decimal]]:
    """Debit and credit totals per (customer, account code) in the customer sub-ledgers: the
    trigger-kept balances, a row per customer and account, whatever the length of their history."""
    # One customer (every payment's live update) gets a statement of its own: with ANY over an array
    # of unknown length PostgreSQL never trusts the prepared plan and plans the read every time.
    ids = list(customer_ids)
    customers = "= %s" if len(ids) == 1 else "= ANY(%s)"
    rows = rows_fetch(
        "SELECT balance.customer_id, account.code, balance.debit_total, balance.credit_total "  # noqa: S608
        "FROM ledger_customerbalance balance JOIN ledger_account account ON account.id = balance.account_id "
        f"WHERE balance.customer_id {customers} AND account.code = ANY(%s)",
        [ids[0] if len(ids) == 1 else ids, list(account_codes)],
    )
    return {(customer_id, code): (debit, credit) for customer_id, code, debit, credit in rows}


def period_lock_current() -> PeriodLock | None:
    return row_first(PeriodLock, "TRUE", [], tail="ORDER BY id DESC LIMIT 1")


def period_lock_could_cover(moment: datetime) -> bool:
    """Whether a closed period could reach `moment`, before reading the lock. Only days that have
    ended can be closed (ledger.services.period_lock_set), so no lock reaches today: a payment made
    today needs no look at it. (PostgreSQL refuses any entry dated inside a closed period whatever
    this says.)"""
    zone = ZoneInfo(settings.TIME_ZONE)
    return moment < datetime.combine(timezone.localdate(timezone=zone), time.min, tzinfo=zone)


@dataclass(frozen=True)
class PostingTerms:
    """What a posting is checked against: the current period lock and its accounts, by code."""

    period_lock: PeriodLock | None
    accounts: dict[str, Account]


def posting_terms(account_codes: Sequence[str]) -> PostingTerms:
    """Both in one read: every payment posts, and on that path a round trip costs more than the
    reading. Accounts not in the chart are simply absent."""
    rows = rows_fetch(
        """
        SELECT lock.id, lock.locked_through, lock.boundary, account.id, account.code, account.name,
               account.is_active
          FROM (SELECT 1) AS one
          LEFT JOIN LATERAL (SELECT id, locked_through, boundary FROM ledger_periodlock
                              ORDER BY id DESC LIMIT 1) AS lock ON TRUE
          LEFT JOIN ledger_account AS account ON account.code = ANY(%s)
        """,
        [list(account_codes)],
    )
    lock_id, locked_through, boundary = rows[0][:3]
    lock = PeriodLock(id=lock_id, locked_through=locked_through, boundary=boundary) if lock_id else None
    accounts = {
        code: Account(id=account_id, code=code, name=name, is_active=is_active)
        for *_, account_id, code, name, is_active in rows
        if account_id is not None
    }
    return PostingTerms(period_lock=lock, accounts=accounts)
