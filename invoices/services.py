"""Receivables: invoices, payments received from any channel, allocations, voids.

Every operation locks the customer row first and then the invoices it changes in primary-key order,
so two payments (or a payment and a new invoice) for one customer never over-allocate an invoice or
spend the same credit twice. Each books its journal entries in the same transaction.

Credit never sits beside open invoices: whenever a customer holds credit and owes on an invoice, the
credit is applied at once, oldest invoice first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from customers.models import Customer
from customers.selectors import customer_get_for_update, customer_position
from invoices.exceptions import (
    InvalidPaymentError,
    InvoiceAlreadyVoidError,
    InvoiceValidationError,
    ReceivablesError,
)
from invoices.models import (
    OPEN_STATUSES,
    VOID_REASON_PREFIX,
    Allocation,
    AllocationKind,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
)
from invoices.selectors import PaymentTarget, payment_reference_resolve
from kellyos.audit import audit_record
from kellyos.db import (
    insert_statement,
    row_first,
    row_inserted,
    row_update,
    rows_of,
    statement_cursor,
    violated_constraint,
)
from kellyos.events import events_publish
from kellyos.money import CENT, MAX_AMOUNT, ZERO, InvalidAmountError, to_kes
from ledger.chart import ACCOUNTS_RECEIVABLE, CUSTOMER_CREDIT, MPESA_CASH, SALES_REVENUE
from ledger.exceptions import LedgerError
from ledger.models import CauseKind, JournalEntry
from ledger.selectors import period_lock_current
from ledger.services import JournalLineInput, journal_entry_post, journal_entry_reverse

QUANTITY_STEP = Decimal("0.001")
CLOCK_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class InvoiceLineInput:
    description: str
    quantity: Decimal | int | str
    unit_price: Decimal | int | str


@dataclass(frozen=True)
class PaymentOutcome:
    payment: Payment
    created: bool  # False: this source receipt was booked before; nothing more was booked now
    # For a repeat: how it differs from the first delivery (amount, reference). Not a harmless
    # duplicate when non-empty: the caller should flag it for review.
    differences: list[str] = field(default_factory=list)


def invoice_create(
    *,
    customer: Customer,
    lines: Sequence[InvoiceLineInput],
    due_date: date,
    by: User | None,
    issue_date: date | None = None,
) -> Invoice:
    """Issue an invoice: DR Accounts Receivable / CR Sales. Credit the customer holds is applied at once."""
    today = timezone.localdate()
    issue_date = issue_date or today
    prepared = _validated_lines(lines, issue_date=issue_date, due_date=due_date, today=today)
    total = sum((line.line_total for line in prepared), ZERO)
    with _ledger_refusals(), transaction.atomic():
        customer = customer_get_for_update(customer.pk)
        if not customer.is_active:
            raise InvoiceValidationError({"customer": f"{customer} is closed; reopen it before invoicing."})
        number = _invoice_number_next(issue_date)
        invoice = Invoice(
            number=number,
            customer=customer,
            issue_date=issue_date,
            due_date=due_date,
            total=total,
            created_by=by,
        )
        invoice.journal_entry = _invoice_post(invoice, by=by, today=today)
        invoice.save()
        for line in prepared:
            line.invoice = invoice
        InvoiceLine.objects.bulk_create(prepared)
        _credit_apply_to_open_invoices(customer=customer, by=by)
        invoice.refresh_from_db()
        _announce(customer, [invoice])
        audit_record(
            action="invoice.create", subject=f"invoice {number}", by=by,
            summary=f"Issued to {customer} for KES {total}, due {due_date}.",
            data={"lines": [[line.description, line.quantity, line.unit_price] for line in prepared]},
        )  # fmt: skip
    return invoice


def invoice_lines_replace(*, invoice: Invoice, lines: Sequence[InvoiceLineInput], by: User | None) -> Invoice:
    """Correct the lines of an invoice nothing has been paid on: its posting is reversed and the new
    total posted. Once money is allocated to it, an invoice can only be voided."""
    today = timezone.localdate()
    with _ledger_refusals(), transaction.atomic():
        customer = customer_get_for_update(invoice.customer_id)
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status != InvoiceStatus.UNPAID:
            status = invoice.get_status_display().lower()
            raise InvoiceValidationError(
                {"lines": f"Invoice {invoice.number} is {status}: only unpaid invoices can be corrected."}
            )
        prepared = _validated_lines(
            lines, issue_date=invoice.issue_date, due_date=invoice.due_date, today=today
        )
        journal_entry_reverse(
            entry=invoice.journal_entry,
            reason=f"Lines of {invoice.number} corrected",
            by=by,
            memo=f"Invoice {invoice.number} corrected: previous lines withdrawn",
        )
        invoice.total = sum((line.line_total for line in prepared), ZERO)
        invoice.journal_entry = _invoice_post(invoice, by=by, today=today)
        invoice.save(update_fields=["total", "journal_entry"])
        invoice.lines.all().delete()
        for line in prepared:
            line.invoice = invoice
        InvoiceLine.objects.bulk_create(prepared)
        _credit_apply_to_open_invoices(customer=customer, by=by)
        invoice.refresh_from_db()
        _announce(customer, [invoice])
        audit_record(
            action="invoice.correct", subject=f"invoice {invoice.number}", by=by,
            summary=f"Lines corrected; total now KES {invoice.total}.",
            data={"lines": [[line.description, line.quantity, line.unit_price] for line in prepared]},
        )  # fmt: skip
    return invoice


def payment_receive(
    *,
    amount: Decimal | int | str,
    reference: str,
    received_at: datetime,
    source: str,
    source_id: str,
    received_into: str = MPESA_CASH,
    by: User | None = None,
    target: PaymentTarget | None = None,
    locked_customer: Customer | None = None,
) -> PaymentOutcome:
    """Book money received against the invoice or customer its reference names.

    Invoice number: that invoice first. Customer code: the oldest open invoice first (issue date,
    then number). Whatever is left pays the customer's other open invoices, oldest first, and the rest
    is credit. Posts DR `received_into` (M-Pesa Cash by default) / CR Accounts Receivable (allocated)
    / CR Customer Credit (excess). Once per (source, source_id): a repeat books nothing and returns the
    first payment. Raises UnknownPaymentReferenceError when the reference names nothing, so the caller
    can hold the money in suspense. `target`: what the reference names, when the caller has just
    resolved it (payment_reference_resolve); `locked_customer`: its customer, when the caller holds
    that row's lock in this transaction already. Inside a caller's transaction it makes no savepoint (two
    round trips on every M-Pesa payment): if it raises there, that transaction can only roll back.
    """
    try:
        amount = to_kes(amount)
    except InvalidAmountError as exc:
        raise InvalidPaymentError(str(exc)) from exc
    if amount <= 0:
        raise InvalidPaymentError(f"A payment must be more than zero, not {amount}.")
    source, source_id = source.strip().lower(), source_id.strip()
    if not source or not source_id:
        raise InvalidPaymentError(
            "A payment needs its source and the source's id for it (e.g. the receipt number)."
        )
    if timezone.is_naive(received_at) or received_at > timezone.now() + CLOCK_TOLERANCE:
        raise InvalidPaymentError(
            f"A payment's time must be a real, past moment with a time zone: {received_at}."
        )
    previous = row_first(Payment, "source = %s AND source_id = %s", [source, source_id])
    if previous is not None:
        return _repeat(previous, amount=amount, reference=reference)
    target = target or payment_reference_resolve(reference)
    try:
        with _ledger_refusals(), transaction.atomic(savepoint=False):
            payment = _payment_book(
                amount=amount,
                reference=reference,
                received_at=received_at,
                source=source,
                source_id=source_id,
                received_into=received_into,
                customer_id=target.customer_id,
                invoice_id=target.invoice_id,
                by=by,
                locked_customer=locked_customer,
            )
    except IntegrityError as exc:
        # Another process booked the same receipt between our look and our insert; its booking stands.
        # A caller's transaction is spoilt by the failed insert: it rolls back, and whoever retries it
        # finds the first booking.
        if violated_constraint(exc) != "invoices_payment_one_per_source_id" or connection.in_atomic_block:
            raise
        return _repeat(
            Payment.objects.get(source=source, source_id=source_id), amount=amount, reference=reference
        )
    return PaymentOutcome(payment=payment, created=True)


def invoice_void(*, invoice: Invoice, reason: str, by: User | None) -> Invoice:
    """Cancel an invoice: its posting is reversed, and whatever was paid on it becomes customer credit
    (applied at once to the customer's other open invoices, oldest first)."""
    reason = reason.strip()
    if not reason:
        raise InvoiceValidationError({"reason": "Say why the invoice is being voided."})
    with _ledger_refusals(), transaction.atomic():
        customer = customer_get_for_update(invoice.customer_id)
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status == InvoiceStatus.VOID:
            raise InvoiceAlreadyVoidError(f"Invoice {invoice.number} is already void.")
        journal_entry_reverse(
            entry=invoice.journal_entry,
            reason=f"{VOID_REASON_PREFIX}{invoice.number}: {reason}",
            by=by,
            memo=f"Void of invoice {invoice.number}: {reason}"[:255],
        )
        if invoice.amount_paid > 0:
            journal_entry_post(
                memo=f"Void {invoice.number}: amount paid kept as customer credit",
                lines=[
                    JournalLineInput(
                        account=ACCOUNTS_RECEIVABLE, debit=invoice.amount_paid, customer_id=customer.pk
                    ),
                    JournalLineInput(
                        account=CUSTOMER_CREDIT, credit=invoice.amount_paid, customer_id=customer.pk
                    ),
                ],
                cause_kind=CauseKind.VOID,
                cause_id=invoice.number,
                by=by,
            )
        invoice.status = InvoiceStatus.VOID
        invoice.voided_at = timezone.now()
        invoice.voided_by = by
        invoice.void_reason = reason
        invoice.save(update_fields=["status", "voided_at", "voided_by", "void_reason"])
        _credit_apply_to_open_invoices(customer=customer, by=by)
        _announce(customer, [invoice])
        audit_record(
            action="invoice.void", subject=f"invoice {invoice.number}", by=by, reason=reason,
            summary=f"Voided; KES {invoice.amount_paid} paid on it became {customer}'s credit.",
        )  # fmt: skip
    return invoice


def payment_reallocate(*, payment: Payment, reference: str, reason: str, by: User | None) -> Payment:
    """Move a payment booked to the wrong customer or invoice: its posting is reversed, its
    allocations undone (those invoices reopen), and the same money is booked to `reference` as a new
    payment, all in one transaction. The old payment stays on record, marked reallocated, with why."""
    reason = reason.strip()
    if not reason:
        raise InvoiceValidationError({"reason": "Say why the payment is being moved."})
    target = payment_reference_resolve(reference)
    with _ledger_refusals(), transaction.atomic():
        payment = _payment_lock(payment, also_customer_id=target.customer_id)
        received_into = (
            payment.journal_entry.lines.filter(debit__gt=0).values_list("account__code", flat=True).get()
        )
        old_customer = payment.customer
        reopened = _payment_withdraw(
            payment,
            reason=f"Reallocated to {reference.strip()}: {reason}",
            memo=f"Payment {payment.source_id} moved from {old_customer.code} to {reference.strip()}",
            by=by,
        )
        source_id = payment.source_id
        payment.source_id = f"{source_id}~{payment.pk}"[
            :64
        ]  # frees the receipt's identity for the new payment
        payment.reallocated_at, payment.reallocated_by, payment.reallocation_reason = (
            timezone.now(),
            by,
            reason,
        )
        payment.save(update_fields=["source_id", "reallocated_at", "reallocated_by", "reallocation_reason"])
        _credit_apply_to_open_invoices(customer=old_customer, by=by)
        _announce(old_customer, reopened)
        audit_record(
            action="payment.reallocate", subject=f"payment {source_id}", by=by, reason=reason,
            summary=f"KES {payment.amount} moved from {old_customer} to {reference.strip()}; reopened "
            f"{', '.join(i.number for i in reopened) or 'no invoices'}.",
        )  # fmt: skip
        outcome = payment_receive(
            amount=payment.amount,
            reference=reference,
            received_at=timezone.now(),
            source=payment.source,
            source_id=source_id,
            received_into=received_into,
            by=by,
            target=target,
        )
    return outcome.payment


def payment_refund(*, payment: Payment, reason: str, by: User | None) -> Payment:
    """The money went back to the payer: the payment's posting is reversed (crediting the account it
    was received into) and its allocations undone, so those invoices reopen. Call it once the refund
    has really happened."""
    reason = reason.strip()
    if not reason:
        raise InvoiceValidationError({"reason": "Say why the payment is refunded."})
    with _ledger_refusals(), transaction.atomic():
        payment = _payment_lock(payment)
        reopened = _payment_withdraw(
            payment,
            reason=f"Refunded: {reason}",
            memo=f"Payment {payment.source_id} refunded to {payment.customer.code}",
            by=by,
        )
        payment.refunded_at, payment.refunded_by, payment.refund_reason = timezone.now(), by, reason
        payment.save(update_fields=["refunded_at", "refunded_by", "refund_reason"])
        _credit_apply_to_open_invoices(customer=payment.customer, by=by)
        _announce(payment.customer, reopened)
        audit_record(
            action="payment.refund", subject=f"payment {payment.source_id}", by=by, reason=reason,
            summary=f"KES {payment.amount} refunded to {payment.customer}; reopened "
            f"{', '.join(i.number for i in reopened) or 'no invoices'}.",
        )  # fmt: skip
    return payment


def payment_refund_problem(payment: Payment) -> str | None:
    """Why this payment cannot be refunded now (None when it can)."""
    if payment.reallocated_at is not None or payment.refunded_at is not None:
        return f"Payment {payment.source_id} has already been moved or refunded."
    if payment.credit_amount > customer_position(payment.customer_id).credit:
        return (
            f"The KES {payment.credit_amount} credit this payment gave {payment.customer} has been used "
            "since; sort that invoice out first."
        )
    if payment.allocations.filter(undone_at__isnull=True, invoice__status=InvoiceStatus.VOID).exists():
        return "An invoice this payment paid has been voided since; its money is credit now."
    return None


def _payment_lock(payment: Payment, *, also_customer_id: int | None = None) -> Payment:
    """Customers first (fixed order), then the payment; refuses a payment that can no longer be undone."""
    for customer_id in sorted({payment.customer_id, also_customer_id or payment.customer_id}):
        customer_get_for_update(customer_id)
    payment = Payment.objects.select_for_update().select_related("customer").get(pk=payment.pk)
    problem = payment_refund_problem(payment)
    if problem:
        raise ReceivablesError(problem)
    return payment


def _payment_withdraw(payment: Payment, *, reason: str, memo: str, by: User | None) -> list[Invoice]:
    """Reverse the payment's posting and undo its allocations; returns the invoices that reopened."""
    allocations = list(payment.allocations.filter(undone_at__isnull=True))
    invoices = {
        invoice.pk: invoice
        for invoice in Invoice.objects.select_for_update()
        .filter(pk__in=[a.invoice_id for a in allocations])
        .order_by("pk")
    }
    journal_entry_reverse(entry=payment.journal_entry, reason=reason, by=by, memo=memo[:255])
    with connection.cursor() as cursor:  # tells the invoice guard this decrease is deliberate
        cursor.execute("SELECT set_config('kellyos.reallocating', 'on', true)")
    now = timezone.now()
    for allocation in allocations:
        invoice = invoices[allocation.invoice_id]
        invoice.amount_paid -= allocation.amount
        invoice.status = InvoiceStatus.UNPAID if invoice.amount_paid == 0 else InvoiceStatus.PARTIALLY_PAID
        invoice.save(update_fields=["amount_paid", "status"])
        allocation.undone_at = now
        allocation.save(update_fields=["undone_at"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('kellyos.reallocating', 'off', true)")
    return list(invoices.values())


def _payment_book(
    *,
    amount: Decimal,
    reference: str,
    received_at: datetime,
    source: str,
    source_id: str,
    received_into: str,
    customer_id: int,
    invoice_id: int | None,
    by: User | None,
    locked_customer: Customer | None,
) -> Payment:
    if locked_customer is not None and locked_customer.pk == customer_id:
        customer = locked_customer  # its lock is held in this transaction already: a round trip saved
    else:
        customer = customer_get_for_update(customer_id)
    open_invoices = _open_invoices_locked(customer)
    # The named invoice first, then the oldest; number order within a day is creation (pk) order.
    plan = sorted(open_invoices, key=lambda i: (i.pk != invoice_id, i.issue_date, i.pk))
    remaining = amount
    shares: list[tuple[Invoice, Decimal]] = []
    for invoice in plan:
        if remaining <= 0:
            break
        share = min(remaining, invoice.balance_due)
        shares.append((invoice, share))
        remaining -= share
    allocated = amount - remaining
    ledger_lines = [JournalLineInput(account=received_into, debit=amount)]
    if allocated > 0:
        ledger_lines.append(
            JournalLineInput(account=ACCOUNTS_RECEIVABLE, credit=allocated, customer_id=customer.pk)
        )
    if remaining > 0:
        ledger_lines.append(
            JournalLineInput(account=CUSTOMER_CREDIT, credit=remaining, customer_id=customer.pk)
        )
    entry = journal_entry_post(
        memo=f"Payment {source_id} from {customer.code} {customer.name} (ref {reference.strip()!r})"[:255],
        lines=ledger_lines,
        cause_kind=CauseKind.RECEIPT,
        cause_id=source_id,
        by=by,
        posted_at=received_at,
    )
    payment = Payment(
        source=source,
        source_id=source_id,
        amount=amount,
        reference=reference.strip()[:100],
        received_at=received_at,
        customer=customer,
        invoice_id=invoice_id,
        allocated_amount=allocated,
        credit_amount=remaining,
        journal_entry=entry,
    )
    _payment_store(payment, shares)
    _announce(customer, [invoice for invoice, _ in shares])
    audit_record(
        action="payment.receive", subject=f"payment {source_id}", by=by,
        summary=f"KES {amount} from {customer} (ref {reference.strip()!r}): KES {allocated} to invoices "
        f"{', '.join(i.number for i, _ in shares) or '-'}, KES {remaining} credit.",
    )  # fmt: skip
    return payment


def _payment_store(payment: Payment, shares: list[tuple[Invoice, Decimal]]) -> None:
    """The payment, its allocations and what it paid on each invoice, in one statement: every payment
    writes these, and on that path each round trip costs more than the database's writing."""
    for invoice, share in shares:
        invoice.amount_paid += share
        invoice.status = _status_when_paid(invoice)
    payment_insert, payment_values = insert_statement(payment)
    invoice_ids = [invoice.pk for invoice, _ in shares]
    cursor = statement_cursor()
    cursor.execute(
        f"WITH payment AS ({payment_insert}), "  # noqa: S608 - built from the model, no input
        "allocated AS (INSERT INTO invoices_allocation (kind, payment_id, invoice_id, amount, "
        "journal_entry_id, created_at) SELECT %s, payment.id, share.invoice_id, share.amount, %s, %s "
        "FROM payment, unnest(%s::bigint[], %s::numeric[]) AS share(invoice_id, amount)), "
        "paid AS (UPDATE invoices_invoice SET amount_paid = paid.amount_paid, status = paid.status "
        "FROM unnest(%s::bigint[], %s::numeric[], %s::varchar[]) AS paid(id, amount_paid, status) "
        "WHERE invoices_invoice.id = paid.id) "
        "SELECT id FROM payment",
        [*payment_values, AllocationKind.PAYMENT, payment.journal_entry_id, payment.created_at,
         invoice_ids, [share for _, share in shares],
         invoice_ids, [invoice.amount_paid for invoice, _ in shares],
         [invoice.status for invoice, _ in shares]],
    )  # fmt: skip
    (payment_id,) = cursor.fetchone()
    row_inserted(payment, payment_id)


def _open_invoices_locked(customer: Customer) -> list[Invoice]:
    return rows_of(
        Invoice,
        "customer_id = %s AND status = ANY(%s)",
        [customer.pk, [str(status) for status in OPEN_STATUSES]],
        tail="ORDER BY id FOR UPDATE",
    )


def _repeat(payment: Payment, *, amount: Decimal, reference: str) -> PaymentOutcome:
    differences = []
    if payment.amount != amount:
        differences.append(f"amount {amount} differs from the first delivery's {payment.amount}")
    if "".join(payment.reference.split()).upper() != "".join(reference.split()).upper():
        differences.append(
            f"reference {reference.strip()!r} differs from the first delivery's {payment.reference!r}"
        )
    return PaymentOutcome(payment=payment, created=False, differences=differences)


def _credit_apply_to_open_invoices(*, customer: Customer, by: User | None) -> None:
    """Use the customer's credit on their open invoices, oldest first. The customer row is locked."""
    credit = customer_position(customer.pk).credit
    if credit <= 0:
        return
    open_invoices = _open_invoices_locked(customer)
    for invoice in sorted(open_invoices, key=lambda i: (i.issue_date, i.pk)):
        if credit <= 0:
            break
        amount = min(credit, invoice.balance_due)
        entry = journal_entry_post(
            memo=f"Credit applied to {invoice.number} for {customer.code} {customer.name}",
            lines=[
                JournalLineInput(account=CUSTOMER_CREDIT, debit=amount, customer_id=customer.pk),
                JournalLineInput(account=ACCOUNTS_RECEIVABLE, credit=amount, customer_id=customer.pk),
            ],
            cause_kind=CauseKind.ALLOCATION,
            cause_id=invoice.number,
            by=by,
        )
        Allocation.objects.create(
            kind=AllocationKind.CREDIT, invoice=invoice, amount=amount, journal_entry=entry
        )
        _invoice_record_paid(invoice, amount)
        credit -= amount


def _announce(customer: Customer, invoices: list[Invoice]) -> None:
    """Tell live screens, when this transaction commits, what changed for the customer."""
    position = customer_position(customer.pk)
    events_publish(
        events=[
            *(
                ("invoice", {"number": invoice.number, "customer": customer.code, "status": invoice.status,
                             "balance_due": invoice.balance_due})
                for invoice in invoices
            ),
            ("customer", {"code": customer.code, "name": customer.name, "owed": position.owed,
                          "credit": position.credit, "balance": position.balance}),
        ]
    )  # fmt: skip


def _invoice_record_paid(invoice: Invoice, amount: Decimal) -> None:
    invoice.amount_paid += amount
    invoice.status = _status_when_paid(invoice)
    row_update(invoice, ["amount_paid", "status"])


def _status_when_paid(invoice: Invoice) -> str:
    return InvoiceStatus.PAID if invoice.amount_paid == invoice.total else InvoiceStatus.PARTIALLY_PAID


def _invoice_post(invoice: Invoice, *, by: User | None, today: date) -> JournalEntry:
    return journal_entry_post(
        memo=f"Invoice {invoice.number} to {invoice.customer.code} {invoice.customer.name}",
        lines=[
            JournalLineInput(
                account=ACCOUNTS_RECEIVABLE, debit=invoice.total, customer_id=invoice.customer_id
            ),
            JournalLineInput(account=SALES_REVENUE, credit=invoice.total),
        ],
        cause_kind=CauseKind.INVOICE,
        cause_id=invoice.number,
        by=by,
        # An invoice entered late is booked on its issue date, so dated reports see it there.
        posted_at=None if invoice.issue_date == today else _start_of_day(invoice.issue_date),
    )


def _invoice_number_next(issue_date: date) -> str:
    # The day's row stays locked until this invoice commits: the next creator waits, and a rolled
    # back invoice gives its number back, so numbers have no gaps.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO invoices_invoicenumbersequence (day, last_number) VALUES (%s, 1)
            ON CONFLICT (day) DO UPDATE SET last_number = invoices_invoicenumbersequence.last_number + 1
            RETURNING last_number
            """,
            [issue_date],
        )
        (number,) = cursor.fetchone()
    return f"INV-{issue_date:%Y%m%d}-{number:04d}"


def _validated_lines(
    lines: Sequence[InvoiceLineInput], *, issue_date: date, due_date: date, today: date
) -> list[InvoiceLine]:
    errors: dict[str, str] = {}
    earliest = today - timedelta(days=settings.INVOICE_MAX_BACKDATE_DAYS)
    if issue_date > today:
        errors["issue_date"] = f"The issue date {issue_date} is in the future."
    elif issue_date < earliest:
        errors["issue_date"] = (
            f"The issue date {issue_date} is more than {settings.INVOICE_MAX_BACKDATE_DAYS} days ago; "
            "statements already sent would change."
        )
    lock = period_lock_current()
    if lock is not None and issue_date <= lock.locked_through:
        errors["issue_date"] = f"The books are closed through {lock.locked_through}."
    if due_date < issue_date:
        errors["due_date"] = f"The due date {due_date} is before the issue date {issue_date}."
    if not lines:
        errors["lines"] = "An invoice needs at least one line."
    prepared = []
    for number, line in enumerate(lines, start=1):
        key = f"lines[{number}]"
        description = " ".join(line.description.split())
        try:
            quantity = _quantity(line.quantity)
            unit_price = to_kes(line.unit_price)
        except (InvalidAmountError, ValueError) as exc:
            errors[key] = str(exc)
            continue
        line_total = (quantity * unit_price).quantize(CENT, rounding=ROUND_HALF_UP)
        if not description:
            errors[key] = "Describe what is being invoiced."
        elif quantity <= 0:
            errors[key] = "Quantity must be more than zero."
        elif unit_price < 0:
            errors[key] = "Unit price cannot be negative."
        elif line_total > MAX_AMOUNT:
            errors[key] = f"The line total {line_total} is larger than an invoice can hold."
        prepared.append(
            InvoiceLine(
                description=description[:255], quantity=quantity, unit_price=unit_price, line_total=line_total
            )
        )
    if not errors:
        total = sum((line.line_total for line in prepared), ZERO)
        if total <= 0:
            errors["lines"] = "The invoice total must be more than zero."
        elif total > MAX_AMOUNT:
            errors["lines"] = f"The invoice total {total} is larger than an invoice can hold."
    if errors:
        raise InvoiceValidationError(errors)
    return prepared


def _start_of_day(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(settings.TIME_ZONE))


def _quantity(value: Decimal | int | str) -> Decimal:
    if isinstance(value, float | bool):
        raise ValueError(f"Quantities must be Decimal, int or str, not {type(value).__name__}.")
    try:
        quantity = Decimal(str(value).strip())
    except ArithmeticError as exc:
        raise ValueError(f"Not a quantity: {value!r}") from exc
    if not quantity.is_finite() or quantity.quantize(QUANTITY_STEP) != quantity:
        raise ValueError(f"Quantities have at most three decimal places: {value!r}")
    if quantity >= Decimal("1e9"):
        raise ValueError(f"Quantity too large: {value!r}")
    return quantity


@contextmanager
def _ledger_refusals() -> Iterator[None]:
    """The ledger's refusals (a closed account, a date it will not take) reach callers as receivables
    errors, in the words the ledger used."""
    try:
        yield
    except LedgerError as exc:
        raise ReceivablesError(str(exc)) from exc
