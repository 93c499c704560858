"""Reading receivables: what a payment reference means, invoice lists, statements, reconciliation."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import F, QuerySet, Sum

from customers.models import Customer
from customers.selectors import customer_code_normalize, customer_id_by_code
from invoices.exceptions import UnknownPaymentReferenceError
from invoices.models import OPEN_STATUSES, VOID_REASON_PREFIX, Invoice, InvoiceStatus
from kellyos.db import rows_fetch
from kellyos.money import ZERO
from ledger.chart import ACCOUNTS_RECEIVABLE, CUSTOMER_CREDIT
from ledger.models import CauseKind, JournalEntry, JournalLine

# What a payer may type for INV-20260203-0001: "inv-20260203-0001", "INV 20260203 1", "inv202602030001".
_INVOICE_NUMBER_TEXT = re.compile(r"^INV-?([0-9]{8})-?([0-9]{1,6})$", re.ASCII)

STATEMENT_KINDS = {
    CauseKind.INVOICE: "Invoice",
    CauseKind.RECEIPT: "Payment",
    CauseKind.ALLOCATION: "Credit applied",
    CauseKind.VOID: "Void: paid amount to credit",
    CauseKind.REVERSAL: "Reversal",
}


@dataclass(frozen=True)
class PaymentTarget:
    customer_id: int
    invoice_id: int | None


@dataclass(frozen=True)
class StatementLine:
    posted_at: datetime
    kind: str
    description: str
    debit: Decimal
    credit: Decimal
    balance: Decimal


@dataclass
class Statement:
    customer: Customer
    start: date
    end: date
    opening_balance: Decimal
    lines: list[StatementLine] = field(default_factory=list)
    closing_balance: Decimal = ZERO


def invoice_number_normalize(reference: str) -> str | None:
    match = _INVOICE_NUMBER_TEXT.match("".join(reference.split()).upper())
    if not match:
        return None
    return f"INV-{match.group(1)}-{int(match.group(2)):04d}"


def invoice_payment_target(number: str) -> PaymentTarget | None:
    """The invoice with exactly this (normalised) number and its customer: one index probe."""
    rows = rows_fetch("SELECT id, customer_id FROM invoices_invoice WHERE number = %s", [number])
    return PaymentTarget(customer_id=rows[0][1], invoice_id=rows[0][0]) if rows else None


def payment_reference_resolve(reference: str) -> PaymentTarget:
    """The invoice or customer a payer's reference names, matched regardless of case and spaces."""
    number = invoice_number_normalize(reference)
    target = invoice_payment_target(number) if number is not None else None
    if target is not None:
        return target
    code = customer_code_normalize(reference)
    customer_id = customer_id_by_code(code) if code is not None else None
    if customer_id is not None:
        return PaymentTarget(customer_id=customer_id, invoice_id=None)
    raise UnknownPaymentReferenceError(f"No invoice or customer matches the reference {reference!r}.")


def invoice_list() -> QuerySet[Invoice]:
    return Invoice.objects.select_related("customer")


def invoice_list_outstanding(*, customer: Customer | None = None) -> QuerySet[Invoice]:
    invoices = invoice_list().filter(status__in=OPEN_STATUSES)
    return invoices if customer is None else invoices.filter(customer=customer)


AGING_BUCKETS = ["current", "1-30", "31-60", "61-90", "90+"]


@dataclass(frozen=True)
class ReceivablesAging:
    """Open invoice balances by days past due: a row per customer that owes (code, name, an amount
    per AGING_BUCKETS bucket, their total), ordered by code, and the same columns' totals."""

    rows: list[list[Any]]
    totals: list[Decimal]


def invoice_aging_by_customer(*, as_of: date) -> ReceivablesAging:
    """Open invoice balances per customer by days past due on `as_of`: current (not yet due), 1-30,
    31-60, 61-90, 90+, and in total.

    At 10^5 customers a quarter of them owe, so everything is summed in the database, the totals too
    (ROLLUP), and the rows come back in the report's order. An empty bucket comes back NULL and
    becomes zero here: most of a customer's buckets are empty, and each zero sent would cost a
    numeric-to-text conversion there and a Decimal parse here (a fifth of the report's time)."""
    ranges = [
        "due_date >= %(as_of)s",
        "due_date < %(as_of)s AND due_date >= %(as_of)s - 30",
        "due_date < %(as_of)s - 30 AND due_date >= %(as_of)s - 60",
        "due_date < %(as_of)s - 60 AND due_date >= %(as_of)s - 90",
        "due_date < %(as_of)s - 90",
    ]
    sums = ", ".join(f"sum(total - amount_paid) FILTER (WHERE {r}) AS b{i}" for i, r in enumerate(ranges))
    with connection.cursor() as cursor:
        # Summed per customer id first, then named; ordered by code point as Python sorts strings. The
        # totals' row (the empty grouping set, there even when nobody owes) has no customer: last.
        cursor.execute(
            f"""
            WITH owed AS (
                SELECT customer_id, {sums}, sum(total - amount_paid) AS total
                  FROM invoices_invoice
                 WHERE status = ANY(%(open)s) AND issue_date <= %(as_of)s
                 GROUP BY ROLLUP (customer_id)
            )
            SELECT c.code, c.name, owed.b0, owed.b1, owed.b2, owed.b3, owed.b4, owed.total
              FROM owed LEFT JOIN customers_customer c ON c.id = owed.customer_id
             ORDER BY c.code COLLATE "C" NULLS LAST, c.name COLLATE "C"
            """,  # noqa: S608 - only the bucket template is interpolated
            {"as_of": as_of, "open": [str(status) for status in OPEN_STATUSES]},
        )
        *owing, (_, _, *totals) = [
            [ZERO if value is None else value for value in row] for row in cursor.fetchall()
        ]
    return ReceivablesAging(rows=owing, totals=totals)


def payment_source_list() -> list[str]:
    """The channels payments have come from, in order. Read by skipping through the (source, source_id)
    unique index one source at a time, so it costs a probe per source, not a read of every payment."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH RECURSIVE sources(source) AS (
                (SELECT source FROM invoices_payment ORDER BY source LIMIT 1)
                UNION ALL
                SELECT (SELECT p.source FROM invoices_payment p WHERE p.source > s.source
                         ORDER BY p.source LIMIT 1)
                  FROM sources s WHERE s.source IS NOT NULL
            )
            SELECT source FROM sources WHERE source IS NOT NULL
            """
        )
        return [source for (source,) in cursor.fetchall()]


def customer_statement_get(*, customer: Customer, start: date, end: date) -> Statement:
    """Opening balance, every movement in the period with a running balance, and the closing balance.

    Read from the customer's sub-ledgers (Accounts Receivable and Customer Credit), so the statement
    always agrees with the books: balance = owed on invoices - credit held.
    """
    period_start, period_end = _start_of_day(start), _start_of_day(end + timedelta(days=1))
    lines = JournalLine.objects.filter(
        customer_id=customer.pk, account__code__in=[ACCOUNTS_RECEIVABLE, CUSTOMER_CREDIT]
    )
    opening = (
        lines.filter(posted_at__lt=period_start).aggregate(net=Sum(F("debit") - F("credit")))["net"] or ZERO
    )
    movements: dict[int, list[Decimal]] = {}
    entries: dict[int, JournalEntry] = {}
    for line in (
        lines.filter(posted_at__gte=period_start, posted_at__lt=period_end)
        .select_related("entry", "entry__reverses")
        .order_by("posted_at", "entry_id", "id")
    ):
        movement = movements.setdefault(line.entry_id, [ZERO, ZERO])
        movement[0] += line.debit
        movement[1] += line.credit
        entries[line.entry_id] = line.entry
    statement = Statement(customer=customer, start=start, end=end, opening_balance=opening)
    running = opening
    for entry_id, (debit, credit) in movements.items():
        entry = entries[entry_id]
        running += debit - credit
        statement.lines.append(
            StatementLine(
                posted_at=entry.posted_at,
                kind=_statement_kind(entry),
                description=entry.memo,
                debit=debit,
                credit=credit,
                balance=running,
            )
        )
    statement.closing_balance = running
    return statement


def _statement_kind(entry: JournalEntry) -> str:
    reversed_entry = entry.reverses
    if (
        entry.cause_kind == CauseKind.REVERSAL
        and reversed_entry
        and reversed_entry.cause_kind == CauseKind.INVOICE
    ):
        return "Void" if entry.reversal_reason.startswith(VOID_REASON_PREFIX) else "Correction"
    return STATEMENT_KINDS.get(CauseKind(entry.cause_kind), entry.get_cause_kind_display())


def statement_csv(statement: Statement) -> str:
    zone = ZoneInfo(settings.TIME_ZONE)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Statement", statement.customer.code, statement.customer.name])
    writer.writerow(["Period", statement.start.isoformat(), statement.end.isoformat()])
    writer.writerow(["Date", "Type", "Description", "Debit", "Credit", "Balance"])
    writer.writerow([statement.start.isoformat(), "Opening balance", "", "", "", statement.opening_balance])
    for line in statement.lines:
        writer.writerow(
            [
                line.posted_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                line.kind,
                line.description,
                line.debit or "",
                line.credit or "",
                line.balance,
            ]
        )
    writer.writerow([statement.end.isoformat(), "Closing balance", "", "", "", statement.closing_balance])
    return out.getvalue()


def receivables_verify() -> list[str]:
    """The receivables agree with the ledger: Accounts Receivable = open invoice balances, Customer
    Credit = the credit payments and voids created less what was applied, per customer
    invoices - payments - voids = balance, invoice totals = their lines, and no credit held beside
    open invoices. Registered with ledger_verify."""
    errors: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute(
            _SUBLEDGER_VS_RECEIVABLES, {"receivable": ACCOUNTS_RECEIVABLE, "credit": CUSTOMER_CREDIT}
        )
        for (
            code,
            ledger_owed,
            due,
            ledger_credit,
            receivables_credit,
            balance,
            expected,
        ) in cursor.fetchall():
            if ledger_owed != due:
                errors.append(
                    f"Customer {code}: receivable in the ledger {ledger_owed} <> open invoices {due}."
                )
            if ledger_credit != receivables_credit:
                errors.append(
                    f"Customer {code}: credit in the ledger {ledger_credit} <> credit from payments "
                    f"and voids less credit applied {receivables_credit}."
                )
            if balance != expected:
                errors.append(
                    f"Customer {code}: invoices - payments - voids = {expected} <> balance {balance}."
                )
        cursor.execute(
            """
            SELECT a.code, coalesce(sum(l.debit - l.credit), 0) FROM ledger_account a
              LEFT JOIN ledger_journalline l ON l.account_id = a.id AND l.customer_id IS NULL
             WHERE a.code IN (%s, %s) GROUP BY a.code HAVING coalesce(sum(l.debit - l.credit), 0) <> 0
            """,
            [ACCOUNTS_RECEIVABLE, CUSTOMER_CREDIT],
        )
        errors += [
            f"Account {code} has {amount} posted without a customer, so it differs from the customers' total."
            for code, amount in cursor.fetchall()
        ]
        cursor.execute(
            """
            SELECT i.number, i.amount_paid, coalesce(sum(al.amount), 0) FROM invoices_invoice i
              LEFT JOIN invoices_allocation al ON al.invoice_id = i.id AND al.undone_at IS NULL
             GROUP BY i.id HAVING i.amount_paid <> coalesce(sum(al.amount), 0)
            """
        )
        errors += [
            f"Invoice {number}: amount paid {paid} <> its allocations {allocated}."
            for number, paid, allocated in cursor.fetchall()
        ]
        cursor.execute(
            """
            SELECT i.number, i.total, coalesce(sum(l.line_total), 0),
                   count(*) FILTER (WHERE l.line_total <> round(l.quantity * l.unit_price, 2))
              FROM invoices_invoice i LEFT JOIN invoices_invoiceline l ON l.invoice_id = i.id
             GROUP BY i.id
            HAVING i.total <> coalesce(sum(l.line_total), 0)
                OR count(*) FILTER (WHERE l.line_total <> round(l.quantity * l.unit_price, 2)) > 0
            """
        )
        errors += [
            f"Invoice {number}: total {total} <> its lines {lines}"
            + (f", and {wrong} line(s) are not quantity x unit price." if wrong else ".")
            for number, total, lines, wrong in cursor.fetchall()
        ]
        cursor.execute(
            """
            SELECT c.code FROM customers_customer c
             WHERE EXISTS (SELECT 1 FROM invoices_invoice i WHERE i.customer_id = c.id AND i.status = ANY(%s))
               AND (SELECT coalesce(sum(l.credit - l.debit), 0) FROM ledger_journalline l
                      JOIN ledger_account a ON a.id = l.account_id
                     WHERE l.customer_id = c.id AND a.code = %s) > 0
            """,
            [[str(status) for status in OPEN_STATUSES], CUSTOMER_CREDIT],
        )
        errors += [
            f"Customer {code} holds credit while owing on open invoices; it should have been applied."
            for (code,) in cursor.fetchall()
        ]
        cursor.execute(
            """
            SELECT p.source_id, p.allocated_amount, coalesce(sum(al.amount), 0) FROM invoices_payment p
              LEFT JOIN invoices_allocation al ON al.payment_id = p.id
             GROUP BY p.id HAVING p.allocated_amount <> coalesce(sum(al.amount), 0)
            """
        )
        errors += [
            f"Payment {source_id}: allocated {allocated} <> its allocations {rows}."
            for source_id, allocated, rows in cursor.fetchall()
        ]
    return errors


# One row per customer with any receivables activity: ledger figures beside receivables figures.
_SUBLEDGER_VS_RECEIVABLES = f"""
WITH ledger AS (
    SELECT l.customer_id,
           sum(CASE WHEN a.code = %(receivable)s THEN l.debit - l.credit ELSE 0 END) AS owed,
           sum(CASE WHEN a.code = %(credit)s THEN l.credit - l.debit ELSE 0 END) AS credit
      FROM ledger_journalline l JOIN ledger_account a ON a.id = l.account_id
     WHERE l.customer_id IS NOT NULL AND a.code IN (%(receivable)s, %(credit)s)
     GROUP BY l.customer_id
), invoiced AS (
    SELECT customer_id,
           sum(total) AS invoiced,
           sum(CASE WHEN status = '{InvoiceStatus.VOID}' THEN total ELSE 0 END) AS voided,
           sum(CASE WHEN status = '{InvoiceStatus.VOID}' THEN amount_paid ELSE 0 END) AS paid_on_voided,
           sum(CASE WHEN status IN ('{InvoiceStatus.UNPAID}', '{InvoiceStatus.PARTIALLY_PAID}')
                    THEN total - amount_paid ELSE 0 END) AS open_balance
      FROM invoices_invoice GROUP BY customer_id
), paid AS (
    SELECT customer_id, sum(amount) AS paid, sum(credit_amount) AS excess
      FROM invoices_payment WHERE reallocated_at IS NULL AND refunded_at IS NULL
     GROUP BY customer_id
), applied AS (
    SELECT i.customer_id, sum(al.amount) AS applied
      FROM invoices_allocation al JOIN invoices_invoice i ON i.id = al.invoice_id
     WHERE al.kind = 'CREDIT' GROUP BY i.customer_id
)
SELECT c.code,
       coalesce(ledger.owed, 0),
       coalesce(invoiced.open_balance, 0),
       coalesce(ledger.credit, 0),
       coalesce(paid.excess, 0) + coalesce(invoiced.paid_on_voided, 0) - coalesce(applied.applied, 0),
       coalesce(ledger.owed, 0) - coalesce(ledger.credit, 0),
       coalesce(invoiced.invoiced, 0) - coalesce(paid.paid, 0) - coalesce(invoiced.voided, 0)
  FROM customers_customer c
  LEFT JOIN ledger ON ledger.customer_id = c.id
  LEFT JOIN invoiced ON invoiced.customer_id = c.id
  LEFT JOIN paid ON paid.customer_id = c.id
  LEFT JOIN applied ON applied.customer_id = c.id
 WHERE ledger.customer_id IS NOT NULL OR invoiced.customer_id IS NOT NULL OR paid.customer_id IS NOT NULL
 ORDER BY c.code
"""  # noqa: S608 - only the status constants are interpolated


def _start_of_day(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(settings.TIME_ZONE))
