"""C2B: validation answers, booking confirmations exactly once, suspense, retries and assignment.

A confirmation means the money has already moved: it is never refused. It is booked to the invoice
or customer its account number names, or else to 2200 Unallocated M-Pesa Receipts with a reason a
clerk can act on. One receipt per TransID: a transaction-scoped advisory lock on the TransID makes
concurrent deliveries wait for the first, and the unique constraint on the receipt is the guarantee.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from customers.models import Customer
from customers.selectors import customer_get_for_update
from invoices.exceptions import ReceivablesError
from invoices.models import Payment
from invoices.services import payment_reallocate
from kellyos.audit import audit_record
from kellyos.db import lock_conflict, row_first, row_insert, rows_fetch, statement_cursor
from kellyos.events import event_publish, events_gathered, write_with_events
from kellyos.logging import about_receipt
from kellyos.money import ZERO, to_kes
from ledger.chart import MPESA_CASH, UNALLOCATED_RECEIPTS
from ledger.exceptions import LedgerError
from ledger.models import CauseKind
from ledger.selectors import period_lock_could_cover, period_lock_current
from ledger.services import JournalLineInput, journal_entry_post
from mpesa.callbacks import NAIROBI, C2BPayment, MalformedCallbackError, c2b_payment_parse
from mpesa.exceptions import MpesaError, ReceiptAssignmentError
from mpesa.models import (
    MpesaReceipt,
    ReceiptConflict,
    ReceiptSource,
    ReceiptStatus,
    RefundState,
    UnallocatedReason,
    WebhookKind,
    WebhookLog,
    WebhookStatus,
)
from mpesa.references import ReferenceKind, ReferenceMatch, reference_match
from mpesa.selectors import suspense_queue_count

logger = logging.getLogger(__name__)

# First key of the advisory locks that serialise deliveries of one TransID.
TRANS_ID_LOCK_SPACE = 2200
# A log still RECEIVED this long after arrival was abandoned mid-booking (a worker died).
STUCK_AFTER = timedelta(minutes=5)
# Log states whose confirmation has not been booked (REFUSED: held until someone checks the caller).
UNBOOKED = (WebhookStatus.RECEIVED, WebhookStatus.FAILED, WebhookStatus.REFUSED)
# Times a booking is tried when PostgreSQL aborts it for a deadlock or serialization conflict.
BOOKING_ATTEMPTS = 3
# TransTime this far before the callback arrived is not believed (pull recovers up to 48 h back).
TRANS_TIME_SLACK = timedelta(days=3)
CLOCK_TOLERANCE = timedelta(minutes=5)
ACCEPTED = ("0", "Accepted")
REJECT_ACCOUNT = ("C2B00012", "Invalid Account Number")
REJECT_AMOUNT = ("C2B00013", "Invalid Amount")
REJECT_SHORTCODE = ("C2B00015", "Invalid Shortcode")
REJECT_OTHER = ("C2B00016", "Other Error")


@dataclass(frozen=True)
class Route:
    """Where a receipt goes: booked through a reference kind, or held in suspense with a reason."""

    reason: str = ""
    detail: str = ""
    suggested_customer: Customer | None = None
    booking: tuple[ReferenceKind, ReferenceMatch] | None = None
    locked_customer: Customer | None = None  # the booking's customer, its row locked by the route


def webhook_log_record(
    *, kind: str, body: bytes, headers: dict[str, str], source_ip: str | None
) -> WebhookLog:
    """Write the raw callback in its own committed transaction, before anything else is tried."""
    log = WebhookLog(
        kind=kind,
        # Stored as text: bytes that are not UTF-8, and NUL (which PostgreSQL text cannot hold),
        # become U+FFFD. Booking reads this same text, so what is logged is what is booked.
        body=body.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
        headers={key: value.replace("\x00", "\ufffd") for key, value in headers.items()},
        source_ip=source_ip,
    )  # received_at: now, when it is inserted (auto_now_add)
    if connection.get_autocommit():
        # Outside any transaction the single INSERT commits by itself: no BEGIN and COMMIT round trips
        # on every callback.
        row_insert(log)
    else:
        with transaction.atomic(durable=True):  # refuses to run inside a transaction that could undo it
            row_insert(log)
    return log


def webhook_log_close(*, log: WebhookLog, status: str, detail: str = "", trans_id: str = "") -> None:
    WebhookLog.objects.filter(pk=log.pk).update(
        status=status, detail=detail, trans_id=trans_id or log.trans_id, processed_at=timezone.now()
    )


def c2b_validate(*, log: WebhookLog) -> tuple[str, str]:
    """Accept or reject a payment before M-Pesa completes it: only fast, indexed reads."""
    try:
        payment = c2b_payment_parse(log.body.encode())
    except MalformedCallbackError as exc:
        webhook_log_close(log=log, status=WebhookStatus.REJECTED, detail=f"Answered C2B00016: {exc}")
        return REJECT_OTHER
    answer = _validation_answer(payment)
    webhook_log_close(
        log=log,
        status=WebhookStatus.PROCESSED,
        detail=f"Answered {answer[0]} {answer[1]}",
        trans_id=payment.trans_id,
    )
    return answer


def c2b_confirmation_book(*, log: WebhookLog, payment: C2BPayment) -> WebhookLog:
    """Book a confirmation exactly once. A failure leaves nothing booked and the log FAILED for retry."""
    with about_receipt(payment.trans_id):
        return _confirmation_book(log=log, payment=payment)


def _confirmation_book(*, log: WebhookLog, payment: C2BPayment) -> WebhookLog:
    changes: dict[str, Any]
    for attempt in range(1, BOOKING_ATTEMPTS + 1):
        retries = attempt - 1
        try:
            with transaction.atomic():
                # The log row first, as the retry path locks it (skipping locked ones): a retry run
                # never takes a confirmation that is being booked now, and the two never deadlock.
                # Then, in the same round trip, the receipt number's lock: the outer select runs on
                # the row the locking subquery returns (PostgreSQL never merges such a subquery into
                # the query around it), so the two locks are taken in that order.
                cursor = statement_cursor()
                cursor.execute(
                    "SELECT log.status, pg_advisory_xact_lock(%s, hashtext(%s)) "
                    "FROM (SELECT status FROM mpesa_webhooklog WHERE id = %s FOR UPDATE) AS log",
                    [TRANS_ID_LOCK_SPACE, payment.trans_id, log.pk],
                )
                (current, _) = cursor.fetchone()
                if current not in UNBOOKED:
                    log.refresh_from_db()  # another runner booked it while this one waited for the lock
                    return log
                with events_gathered():
                    status, detail, receipt = receipt_book(log=log, payment=payment, number_locked=True)
                    now = timezone.now()
                    changes = {"status": status, "detail": detail, "receipt": receipt, "processed_at": now}
                    # In the statement that stores the booking's events and audit entry.
                    write_with_events(
                        "UPDATE mpesa_webhooklog SET trans_id = %s, attempts = attempts + 1, status = %s, "
                        "detail = %s, receipt_id = %s, processed_at = %s, "
                        "lock_conflict_retries = lock_conflict_retries + %s WHERE id = %s",
                        [payment.trans_id, status, detail, receipt.pk, now, retries, log.pk],
                    )  # fmt: skip
            break
        except Exception as exc:  # anything at all: the raw log is safe, and the retry books it later
            if lock_conflict(exc) and attempt < BOOKING_ATTEMPTS:
                # PostgreSQL chose this transaction as a deadlock's victim and rolled it back whole:
                # booking again at once is safe, and is what the payer's money needs.
                logger.warning("Booking %s hit a lock conflict (%s); booking it again", payment.trans_id, exc)
                continue
            logger.exception("Booking M-Pesa confirmation %s failed; it will be retried", payment.trans_id)
            changes = {"status": WebhookStatus.FAILED, "detail": f"{type(exc).__name__}: {exc}"[:2000]}
            WebhookLog.objects.filter(pk=log.pk).update(
                trans_id=payment.trans_id,
                attempts=F("attempts") + 1,
                lock_conflict_retries=F("lock_conflict_retries") + retries,
                **changes,
            )
            break
    for field, value in {**changes, "trans_id": payment.trans_id, "attempts": log.attempts + 1}.items():
        setattr(log, field, value)
    return log


# Callbacks that move money, and so are retried until processed.
RETRIED_KINDS = [
    WebhookKind.C2B_CONFIRMATION,
    WebhookKind.STK_CALLBACK,
    WebhookKind.REFUND_RESULT,
    WebhookKind.REFUND_TIMEOUT,
]


def c2b_retry_failed(*, logs: Any = None, stuck_after: timedelta = STUCK_AFTER) -> list[WebhookLog]:
    """Book again every confirmation (or STK callback) whose processing failed, or that was left
    half-way (a worker killed mid-booking leaves its log RECEIVED). Safe to run at any time, from
    any number of processes: each log is claimed by one runner, and a receipt is booked once."""
    stuck_before = timezone.now() - stuck_after
    candidates = (
        logs
        if logs is not None
        else WebhookLog.objects.filter(
            Q(status=WebhookStatus.FAILED) | Q(status=WebhookStatus.RECEIVED, received_at__lt=stuck_before)
        )
    )
    results = []
    kinds = RETRIED_KINDS
    for log_id in candidates.filter(kind__in=kinds).order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            log = (
                WebhookLog.objects.select_for_update(skip_locked=True)
                .filter(pk=log_id, status__in=[WebhookStatus.FAILED, WebhookStatus.RECEIVED])
                .first()
            )
            if log is None:
                continue  # another runner has it, or it was booked meanwhile
            try:
                with transaction.atomic():
                    results.append(_book_logged(log))
            except Exception:
                # One log that cannot be booked must not keep the others from their retry.
                logger.exception("Retrying webhook log #%s failed; it stays for the next run", log_id)
    return results


def c2b_book_refused(*, logs: Any, by: User) -> list[WebhookLog]:
    """Book confirmations refused for their source address, once someone has checked with Safaricom
    that the payment is real (Safaricom also calls from addresses it does not publish)."""
    results = []
    for log in logs.filter(kind=WebhookKind.C2B_CONFIRMATION, status=WebhookStatus.REFUSED).order_by("pk"):
        audit_record(
            action="webhook.book_refused",
            subject=f"webhook log {log.pk}",
            by=by,
            summary=f"Refused callback from {log.source_ip} booked after checking with Safaricom.",
        )
        logger.warning("%s books refused callback #%s from %s after checking it", by, log.pk, log.source_ip)
        results.append(_book_logged(log))
    return results


def _book_logged(log: WebhookLog) -> WebhookLog:
    if log.kind == WebhookKind.STK_CALLBACK:
        from mpesa.services.stk import stk_callback_process  # the STK module builds on this one

        stk_callback_process(log=log)
        log.refresh_from_db()
        return log
    if log.kind in {WebhookKind.REFUND_RESULT, WebhookKind.REFUND_TIMEOUT}:
        from mpesa.services.refund import refund_result_process  # builds on this one too

        refund_result_process(log=log)
        log.refresh_from_db()
        return log
    try:
        payment = c2b_payment_parse(log.body.encode())
    except MalformedCallbackError as exc:
        webhook_log_close(log=log, status=WebhookStatus.REJECTED, detail=str(exc))
        log.status, log.detail = WebhookStatus.REJECTED, str(exc)
        return log
    return c2b_confirmation_book(log=log, payment=payment)


def receipt_assign(*, receipt: MpesaReceipt, reference: str, by: User | None) -> MpesaReceipt:
    """A clerk names the invoice or customer the suspense part of a receipt belongs to: DR 2200
    Unallocated / CR Accounts Receivable or Customer Credit, through the receivables service."""
    found = reference_match(reference)
    if found is None:
        raise ReceiptAssignmentError(f"No invoice, customer or sale matches {reference!r}.")
    kind, match = found
    with transaction.atomic():
        receipt = MpesaReceipt.objects.select_for_update().get(pk=receipt.pk)
        if receipt.unallocated_amount <= 0 or receipt.payment_id is not None:
            raise ReceiptAssignmentError(f"Receipt {receipt.trans_id} has nothing left in suspense.")
        _refuse_while_refunding(receipt)
        if match.sale is not None:
            return _assign_to_sale(receipt, kind=kind, match=match, by=by)
        booking = kind.book(
            match=match,
            reference=reference,
            amount=receipt.unallocated_amount,
            # The move out of suspense happens now; the receipt keeps when M-Pesa took the money.
            received_at=timezone.now(),
            trans_id=receipt.trans_id,
            received_into=UNALLOCATED_RECEIPTS,
            payer_name=receipt.payer_name,
        )
        assert booking.payment is not None
        receipt.payment = booking.payment
        receipt.customer_id = booking.payment.customer_id
        if receipt.status == ReceiptStatus.UNALLOCATED:
            receipt.status = _status_of(booking.payment)
        receipt.unallocated_amount = ZERO
        receipt.assigned_at = timezone.now()
        receipt.assigned_by = by
        receipt.save(
            update_fields=[
                "payment",
                "customer",
                "status",
                "unallocated_amount",
                "assigned_at",
                "assigned_by",
            ]
        )
        audit_record(
            action="receipt.assign",
            subject=f"receipt {receipt.trans_id}",
            by=by,
            summary=f"KES {booking.payment.amount} moved from suspense to {reference.strip()}.",
        )
    return receipt


def _assign_to_sale(
    receipt: MpesaReceipt, *, kind: ReferenceKind, match: ReferenceMatch, by: User | None
) -> MpesaReceipt:
    """Suspense money to a till sale: DR 2200 / CR 4000 for what the sale takes; the rest stays in
    suspense with the reason."""
    if receipt.sale_payment_id is not None:
        raise ReceiptAssignmentError(f"Receipt {receipt.trans_id} has already paid a sale.")
    booking = kind.book(
        match=match,
        reference=match.label,
        amount=receipt.unallocated_amount,
        received_at=timezone.now(),
        trans_id=receipt.trans_id,
        received_into=UNALLOCATED_RECEIPTS,
        payer_name=receipt.payer_name,
    )
    if booking.sale_payment is None:
        raise ReceiptAssignmentError(f"Sale {match.label} takes no more money: {booking.excess_detail}")
    receipt.sale_payment = booking.sale_payment
    receipt.status = ReceiptStatus.SALE
    receipt.unallocated_amount = booking.excess
    if booking.excess:
        receipt.unallocated_reason, receipt.unallocated_detail = booking.excess_reason, booking.excess_detail
    receipt.assigned_at, receipt.assigned_by = timezone.now(), by
    audit_record(action="receipt.assign", subject=f"receipt {receipt.trans_id}", by=by,
                 summary=f"Moved from suspense to sale {match.label}.")  # fmt: skip
    receipt.save(
        update_fields=[
            "sale_payment",
            "status",
            "unallocated_amount",
            "unallocated_reason",
            "unallocated_detail",
            "assigned_at",
            "assigned_by",
        ]
    )
    return receipt


def receipt_reallocate(
    *, receipt: MpesaReceipt, reference: str, reason: str, by: User | None
) -> MpesaReceipt:
    """A receipt booked to the wrong invoice or customer goes where it belongs (see payment_reallocate)."""
    with transaction.atomic():
        receipt = MpesaReceipt.objects.select_for_update().get(pk=receipt.pk)
        _refuse_while_refunding(receipt)
        if receipt.payment is None:
            raise ReceiptAssignmentError(
                f"Receipt {receipt.trans_id} is not booked to a customer; assign it instead."
            )
        try:
            payment = payment_reallocate(payment=receipt.payment, reference=reference, reason=reason, by=by)
        except ReceivablesError as exc:
            raise ReceiptAssignmentError(str(exc)) from exc
        receipt.payment, receipt.customer_id, receipt.status = (
            payment,
            payment.customer_id,
            _status_of(payment),
        )
        receipt.save(update_fields=["payment", "customer", "status"])
    return receipt


def _refuse_while_refunding(receipt: MpesaReceipt) -> None:
    if (
        receipt.status == ReceiptStatus.REFUNDED
        or receipt.refunds.filter(
            state__in=[RefundState.REQUESTED, RefundState.TIMED_OUT, RefundState.NEEDS_REVIEW]
        ).exists()
    ):
        raise ReceiptAssignmentError(
            f"Receipt {receipt.trans_id} is refunded, or a refund of it is with Safaricom; it cannot move."
        )


def conflict_review(*, conflict: ReceiptConflict, note: str, by: User | None) -> ReceiptConflict:
    conflict.reviewed_at = timezone.now()
    conflict.reviewed_by = by
    conflict.review_note = note.strip()
    conflict.save(update_fields=["reviewed_at", "reviewed_by", "review_note"])
    return conflict


def receipt_book(
    *, log: WebhookLog, payment: C2BPayment, source: str = ReceiptSource.C2B, number_locked: bool = False
) -> tuple[str, str, MpesaReceipt]:
    """Book an M-Pesa payment exactly once, whichever channel told us first (a C2B confirmation or an
    STK Push callback carry the same receipt number). Runs inside the caller's transaction, which may
    have taken the receipt number's lock already (`number_locked`), in a statement of its own."""
    if not number_locked:
        cursor = statement_cursor()
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [TRANS_ID_LOCK_SPACE, payment.trans_id]
        )
    first = row_first(MpesaReceipt, "trans_id = %s", [payment.trans_id])
    if first is not None:
        if (
            first.source == ReceiptSource.STK
            and not first.bill_ref_number.strip()
            and payment.bill_ref_number.strip()
            and not receipt_differences(first, replace(payment, bill_ref_number=""))
        ):
            return _place_by_later_account(first, payment, log=log)
        differences = receipt_differences(first, payment)
        if not differences:
            return (
                WebhookStatus.DUPLICATE,
                f"Already booked from an earlier delivery: {first.get_status_display()}.",
                first,
            )
        ReceiptConflict.objects.create(receipt=first, webhook_log=log, differences="; ".join(differences))
        return (
            WebhookStatus.CONFLICT,
            "Repeated TransID with different details: " + "; ".join(differences),
            first,
        )

    received_at = _booking_time(payment, log)
    receipt = MpesaReceipt(
        trans_id=payment.trans_id,
        trans_time=received_at,
        amount=payment.amount,
        business_short_code=payment.business_short_code,
        bill_ref_number=payment.bill_ref_number,
        invoice_number=payment.invoice_number,
        transaction_type=payment.transaction_type,
        org_account_balance=payment.org_account_balance,
        third_party_trans_id=payment.third_party_trans_id,
        msisdn=payment.msisdn,
        payer_name=payment.payer_name,
        source=source,
    )
    route = _route(payment, received_at=received_at)
    if route.booking is None:
        receipt.status = ReceiptStatus.UNALLOCATED
        _hold_in_suspense(
            receipt,
            amount=payment.amount,
            reason=route.reason or UnallocatedReason.UNKNOWN_REFERENCE,
            detail=route.detail or f"Account number {payment.bill_ref_number!r} matches nothing.",
        )
        receipt.suggested_customer = route.suggested_customer
    else:
        kind, match = route.booking
        booking = kind.book(
            match=match,
            reference=payment.bill_ref_number,
            amount=payment.amount,
            received_at=received_at,
            trans_id=payment.trans_id,
            received_into=MPESA_CASH,
            payer_name=payment.payer_name,
            locked_customer=route.locked_customer,
        )
        receipt.payment = booking.payment
        receipt.sale_payment = booking.sale_payment
        receipt.customer_id = booking.payment.customer_id if booking.payment else None
        if booking.payment:
            receipt.status = _status_of(booking.payment)
        elif booking.sale_payment:
            receipt.status = ReceiptStatus.SALE
        else:
            receipt.status = ReceiptStatus.UNALLOCATED
        if booking.excess:
            _hold_in_suspense(
                receipt, amount=booking.excess, reason=booking.excess_reason, detail=booking.excess_detail
            )
    row_insert(receipt)
    announced: dict[str, Any] = {
        "trans_id": receipt.trans_id, "amount": receipt.amount, "payer": receipt.payer_name,
        "account": receipt.bill_ref_number, "status": receipt.get_status_display(),
        "unallocated_amount": receipt.unallocated_amount, "time": receipt.trans_time,
        "sale": booking_sale_reference(receipt),
    }  # fmt: skip
    if receipt.unallocated_amount:
        # Counted only when this receipt joined the queue: the count grows with the suspense
        # history, and most payments leave it as it was.
        announced["unallocated_count"] = suspense_queue_count()
    event_publish(kind="payment", payload=announced)
    return WebhookStatus.PROCESSED, f"Booked: {receipt.get_status_display()}.", receipt


def _place_by_later_account(
    first: MpesaReceipt, payment: C2BPayment, *, log: WebhookLog
) -> tuple[str, str, MpesaReceipt]:
    """The first delivery of this receipt was an M-Pesa Express callback whose prompt we had lost: it
    named no account, and the money waited in suspense. This delivery names the account. While the
    money still waits there whole, the receipt takes the account (a later delivery naming another is
    then a conflict), and the money moves to it when it is a till sale, the only thing a prompt is
    sent for; anything else is left to a person. Once someone has placed it, an account other than
    where it went is a conflict for review."""
    account = payment.bill_ref_number.strip()
    receipt = MpesaReceipt.objects.select_for_update().get(pk=first.pk)
    if not (
        receipt.unallocated_reason == UnallocatedReason.UNKNOWN_REFERENCE
        and receipt.unallocated_amount == receipt.amount
        and receipt.payment_id is None
        and receipt.sale_payment_id is None
    ):
        placed_on = _placed_on(receipt)
        if placed_on.upper() == account.upper():
            # Safaricom confirms where the person placed it: the receipt keeps the account, so
            # later listings of it (the scheduled pulls) have nothing new to say.
            receipt.bill_ref_number = account
            receipt.save(update_fields=["bill_ref_number"])
            return WebhookStatus.DUPLICATE, f"Already booked: {receipt.get_status_display()}.", receipt
        difference = f"account {account!r} (the first delivery named none; the money went to {placed_on!r})"
        ReceiptConflict.objects.create(receipt=receipt, webhook_log=log, differences=difference)
        return WebhookStatus.CONFLICT, f"Repeated TransID with different details: {difference}", receipt
    receipt.bill_ref_number = account
    found = reference_match(account)
    if found is not None and found[1].sale is not None:
        receipt.save(update_fields=["bill_ref_number"])
        try:
            placed = receipt_assign(receipt=receipt, reference=account, by=None)
        except (MpesaError, ReceivablesError, LedgerError) as exc:
            why = f"it could not take the money: {exc}"
        else:
            return (
                WebhookStatus.PROCESSED,
                f"Moved from suspense to {account}, which this delivery names.",
                placed,
            )
    else:
        why = "it is not a till sale's; a person places it"
    receipt.unallocated_detail = (
        f"M-Pesa Express payment named no account; a later delivery names {account!r}: {why}."
    )
    receipt.save(update_fields=["bill_ref_number", "unallocated_detail"])
    return (
        WebhookStatus.DUPLICATE,
        f"Already booked, to suspense; this delivery names {account!r}, but {why}.",
        receipt,
    )


def _placed_on(receipt: MpesaReceipt) -> str:
    return booking_sale_reference(receipt) or (receipt.payment.reference if receipt.payment else "")


def booking_sale_reference(receipt: MpesaReceipt) -> str | None:
    return receipt.sale_payment.sale.reference if receipt.sale_payment else None


def _hold_in_suspense(receipt: MpesaReceipt, *, amount: Decimal, reason: str, detail: str) -> None:
    """Book money no one can be matched to yet: DR 1010 M-Pesa Cash / CR 2200 Unallocated."""
    receipt.unallocated_amount = amount
    receipt.unallocated_reason = reason
    receipt.unallocated_detail = detail
    receipt.suspense_entry = journal_entry_post(
        memo=f"M-Pesa {receipt.trans_id} held in suspense: {detail}"[:255],
        lines=[
            JournalLineInput(account=MPESA_CASH, debit=amount),
            JournalLineInput(account=UNALLOCATED_RECEIPTS, credit=amount),
        ],
        cause_kind=CauseKind.RECEIPT,
        cause_id=receipt.trans_id,
        posted_at=receipt.trans_time,
    )


def _booking_time(payment: C2BPayment, log: WebhookLog) -> datetime:
    """When the money moved: TransTime, unless it is missing or implausibly far from when the callback
    arrived (a bad clock must not back-date the books); then the arrival time."""
    arrived = log.received_at
    believable = (
        payment.trans_time and arrived - TRANS_TIME_SLACK <= payment.trans_time <= arrived + CLOCK_TOLERANCE
    )
    if payment.trans_time and believable and not period_lock_could_cover(payment.trans_time):
        return payment.trans_time  # most payments: made today, where no closed period reaches
    lock = period_lock_current()
    if payment.trans_time and believable and (lock is None or payment.trans_time >= lock.boundary):
        return payment.trans_time
    # Money must still be booked when its day has been closed: it lands in the open period.
    return max(arrived, lock.boundary) if lock else arrived


def _route(payment: C2BPayment, *, received_at: datetime) -> Route:
    """Why this receipt cannot go straight to a customer, if it cannot. Locks the customer row
    before reading their day's total, so two receipts at once cannot both slip under the limit."""
    if payment.business_short_code != settings.MPESA_SHORTCODE:
        return Route(
            UnallocatedReason.WRONG_SHORTCODE,
            f"Paid to shortcode {payment.business_short_code!r}, not ours ({settings.MPESA_SHORTCODE}).",
        )
    limit = to_kes(settings.MPESA_MAX_TRANSACTION)
    if payment.amount > limit:
        return Route(
            UnallocatedReason.OVER_TRANSACTION_LIMIT, f"KES {payment.amount} is over the KES {limit} maximum."
        )
    found = reference_match(payment.bill_ref_number)
    if found is None:
        suggestion = _customer_by_phone_hash(payment.msisdn_sha256)
        detail = (
            f"Account number {payment.bill_ref_number!r} matches no invoice or customer."
            if payment.bill_ref_number.strip()
            else "The payment names no account number."
        )
        if suggestion:
            detail += f" The payer's phone is {suggestion}'s."
        return Route(UnallocatedReason.UNKNOWN_REFERENCE, detail, suggested_customer=suggestion)
    if found[1].customer_id is None:
        return Route(booking=found)  # a till sale: no customer account, no daily limit of ours
    customer = customer_get_for_update(found[1].customer_id)
    daily_limit = to_kes(settings.MPESA_DAILY_CUSTOMER_LIMIT)
    paid_today = _paid_on(customer=customer, day=received_at.astimezone(NAIROBI).date())
    if paid_today + payment.amount > daily_limit:
        return Route(
            UnallocatedReason.OVER_DAILY_LIMIT,
            f"{customer} has paid KES {paid_today} today; with KES {payment.amount} more that is over the "
            f"KES {daily_limit} daily limit.",
            suggested_customer=customer,
        )
    return Route(booking=found, locked_customer=customer)


def _validation_answer(payment: C2BPayment) -> tuple[str, str]:
    if payment.business_short_code != settings.MPESA_SHORTCODE:
        return REJECT_SHORTCODE
    if payment.amount != payment.amount.to_integral_value() or not (
        1 <= payment.amount <= to_kes(settings.MPESA_MAX_TRANSACTION)
    ):
        return REJECT_AMOUNT
    found = reference_match(payment.bill_ref_number)
    if found is None:
        return REJECT_ACCOUNT if settings.MPESA_REJECT_UNKNOWN_ACCOUNTS else ACCEPTED
    kind, match = found
    refusal = kind.refusal(match, payment.amount)
    if refusal:
        return REJECT_ACCOUNT if refusal == "account" else REJECT_AMOUNT
    if match.customer_id is None:
        return ACCEPTED
    customer = Customer.objects.get(pk=match.customer_id)
    today = timezone.localdate(timezone=NAIROBI)
    if _paid_on(customer=customer, day=today) + payment.amount > to_kes(settings.MPESA_DAILY_CUSTOMER_LIMIT):
        return REJECT_AMOUNT
    return ACCEPTED


def _paid_on(*, customer: Customer, day: date) -> Decimal:
    start = datetime.combine(day, time.min, tzinfo=NAIROBI)
    [(total,)] = rows_fetch(
        "SELECT sum(amount) FROM mpesa_mpesareceipt WHERE customer_id = %s AND trans_time >= %s "
        "AND trans_time < %s",
        [customer.pk, start, start + timedelta(days=1)],
    )
    return total or ZERO


def _customer_by_phone_hash(msisdn_sha256: str | None) -> Customer | None:
    if not msisdn_sha256:
        return None
    return Customer.objects.filter(phone_sha256=msisdn_sha256).order_by("pk").first()


def receipt_differences(first: MpesaReceipt, payment: C2BPayment) -> list[str]:
    """What a later delivery of a booked receipt says otherwise than the booking, in words."""
    differences = []
    if first.amount != payment.amount:
        differences.append(f"amount {payment.amount} (first delivery {first.amount})")
    # A delivery naming no account (an M-Pesa Express callback whose prompt we had lost) says nothing
    # against the account another named.
    if (
        payment.bill_ref_number.strip()
        and first.bill_ref_number.strip().upper() != payment.bill_ref_number.strip().upper()
    ):
        differences.append(f"account {payment.bill_ref_number!r} (first delivery {first.bill_ref_number!r})")
    if first.business_short_code != payment.business_short_code:
        differences.append(
            f"shortcode {payment.business_short_code!r} (first delivery {first.business_short_code!r})"
        )
    return differences


def _status_of(payment: Payment) -> str:
    if payment.allocated_amount == payment.amount:
        return ReceiptStatus.ALLOCATED
    if payment.allocated_amount == 0:
        return ReceiptStatus.CREDIT
    return ReceiptStatus.PARTLY_ALLOCATED
