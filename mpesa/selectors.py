from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection

from kellyos.money import ZERO
from ledger.chart import UNALLOCATED_RECEIPTS
from mpesa.models import ReceiptStatus

COLLECTION_KINDS = ["invoice", "customer", "sale", "unallocated", "refunded"]


def receipt_collections_by_day(
    *, start: date, end: date
) -> tuple[list[tuple[date, dict[str, Decimal]]], Decimal]:
    """M-Pesa receipts per business day (Nairobi) from `start` to `end`, split by what they paid:
    invoices named, customer accounts, till sales, the part held in suspense, and receipts since refunded
    (counted whole, apart). Summed in the database, one row per day; also the period's total received."""
    zone = ZoneInfo(settings.TIME_ZONE)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT (r.trans_time AT TIME ZONE %(zone)s)::date,
                   coalesce(sum(pay.amount) FILTER (WHERE pay.invoice_id IS NOT NULL), 0.00),
                   coalesce(sum(pay.amount) FILTER (WHERE pay.invoice_id IS NULL), 0.00),
                   coalesce(sum(r.amount - r.unallocated_amount)
                            FILTER (WHERE r.status <> %(refunded)s AND r.sale_payment_id IS NOT NULL), 0.00),
                   coalesce(sum(r.unallocated_amount) FILTER (WHERE r.status <> %(refunded)s), 0.00),
                   coalesce(sum(r.amount) FILTER (WHERE r.status = %(refunded)s), 0.00),
                   sum(r.amount)
              FROM mpesa_mpesareceipt r
              -- One primary-key probe per receipt of the period (LIMIT keeps it a probe), rather than
              -- a hash join that reads every payment ever received.
              LEFT JOIN LATERAL (
                  SELECT p.amount, p.invoice_id FROM invoices_payment p
                   WHERE p.id = r.payment_id AND r.status <> %(refunded)s AND r.sale_payment_id IS NULL
                   LIMIT 1
              ) pay ON true
             WHERE r.trans_time >= %(start)s AND r.trans_time < %(end)s
             GROUP BY 1 ORDER BY 1
            """,
            {
                "zone": settings.TIME_ZONE,
                "refunded": ReceiptStatus.REFUNDED.value,
                "start": datetime.combine(start, time.min, tzinfo=zone),
                "end": datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone),
            },
        )
        rows = cursor.fetchall()
    days = [(row[0], dict(zip(COLLECTION_KINDS, row[1:6], strict=True))) for row in rows]
    return days, sum((row[6] for row in rows), ZERO)


def mpesa_verify() -> list[str]:
    """The M-Pesa side agrees with the books: the suspense account holds exactly the unallocated parts
    of receipts, and every receipt is wholly accounted for by its payment, sale payment and suspense
    part (or was refunded by a completed reversal); the callback counts /metrics reads agree with the
    webhook log. Registered with ledger_verify."""
    errors = []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT (SELECT coalesce(sum(l.credit - l.debit), 0) FROM ledger_journalline l
                      JOIN ledger_account a ON a.id = l.account_id WHERE a.code = %s),
                   (SELECT coalesce(sum(unallocated_amount), 0) FROM mpesa_mpesareceipt)
            """,
            [UNALLOCATED_RECEIPTS],
        )
        suspense, unallocated = cursor.fetchone()
        if suspense != unallocated:
            errors.append(
                f"Account {UNALLOCATED_RECEIPTS} holds {suspense} but the unallocated M-Pesa receipts "
                f"add up to {unallocated}."
            )
        cursor.execute(
            """
            SELECT r.trans_id, r.amount,
                   coalesce(p.amount, 0) + coalesce(sp.amount, 0) + r.unallocated_amount
              FROM mpesa_mpesareceipt r
              LEFT JOIN invoices_payment p ON p.id = r.payment_id
              LEFT JOIN pos_salepayment sp ON sp.id = r.sale_payment_id
             WHERE r.status <> 'REFUNDED'
               AND coalesce(p.amount, 0) + coalesce(sp.amount, 0) + r.unallocated_amount <> r.amount
            """
        )
        errors += [
            f"M-Pesa receipt {trans_id} for {amount} is booked as {booked} (payments, sale and suspense)."
            for trans_id, amount, booked in cursor.fetchall()
        ]
        cursor.execute(
            """
            SELECT r.trans_id FROM mpesa_mpesareceipt r
             WHERE r.status = 'REFUNDED'
               AND NOT EXISTS (SELECT 1 FROM mpesa_mpesarefund f
                                WHERE f.receipt_id = r.id AND f.state = 'COMPLETED')
            """
        )
        errors += [
            f"M-Pesa receipt {trans_id} is marked refunded without a completed reversal."
            for (trans_id,) in cursor.fetchall()
        ]
        cursor.execute(
            "SELECT r.trans_id FROM mpesa_mpesarefund f JOIN mpesa_mpesareceipt r ON r.id = f.receipt_id"
            " WHERE f.state = 'NEEDS_REVIEW'"
        )
        errors += [
            f"M-Pesa receipt {trans_id} was reversed by Safaricom but is still in our books (refund needs "
            "review)."
            for (trans_id,) in cursor.fetchall()
        ]
        cursor.execute(
            """
            SELECT kind, status, coalesce(logged.callbacks, 0), coalesce(counted.callbacks, 0),
                   coalesce(logged.retries, 0), coalesce(counted.retries, 0)
              FROM (SELECT kind, status, count(*) AS callbacks, sum(lock_conflict_retries) AS retries
                      FROM mpesa_webhooklog GROUP BY kind, status) AS logged
              FULL JOIN (SELECT kind, status, sum(callbacks) AS callbacks,
                                sum(lock_conflict_retries) AS retries
                           FROM mpesa_callbacktally GROUP BY kind, status) AS counted USING (kind, status)
             WHERE coalesce(logged.callbacks, 0) <> coalesce(counted.callbacks, 0)
                OR coalesce(logged.retries, 0) <> coalesce(counted.retries, 0)
            """
        )
        errors += [
            f"Callback counts for /metrics say {counted} {kind} {status} ({counted_retries} lock-conflict "
            f"retries) but the webhook log holds {logged} ({logged_retries})."
            for kind, status, logged, counted, logged_retries, counted_retries in cursor.fetchall()
        ]
    return errors


def suspense_queue_count() -> int:
    """Receipts (or parts) waiting for a clerk to name where they belong: the dashboard's figure."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM mpesa_mpesareceipt WHERE unallocated_amount > 0 AND payment_id IS NULL"
        )
        (count,) = cursor.fetchone()
    return int(count)


@dataclass(frozen=True)
class MpesaMetrics:
    callbacks: list[tuple[str, str, int]]  # (kind, status, count)
    unallocated_count: int
    unallocated_amount: Decimal
    refunds_needing_review: int
    lock_conflict_retries: int  # bookings tried again after a deadlock or serialization conflict
    # Seconds from a confirmation's arrival to its booking, over those that arrived in the last 5 minutes
    # (the log's kind index covers that); one still waiting counts as waited so far, so a backlog shows.
    booking_latency: dict[str, float | None]


def mpesa_metrics() -> MpesaMetrics:
    with connection.cursor() as cursor:
        # Kept by PostgreSQL as the log is written (migration 0007): a few rows whatever the history.
        cursor.execute(
            "SELECT kind, status, sum(callbacks), sum(lock_conflict_retries) FROM mpesa_callbacktally"
            " GROUP BY kind, status ORDER BY 1, 2"
        )
        rows = cursor.fetchall()
        callbacks = [(kind, status, int(count)) for kind, status, count, _ in rows if count]
        lock_conflict_retries = int(sum(retries for *_, retries in rows))
        cursor.execute(
            "SELECT count(*), coalesce(sum(unallocated_amount), 0) FROM mpesa_mpesareceipt"
            " WHERE unallocated_amount > 0"
        )
        unallocated_count, unallocated_amount = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM mpesa_mpesarefund WHERE state = 'NEEDS_REVIEW'")
        (needing_review,) = cursor.fetchone()
        cursor.execute(
            """
            SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (
                       ORDER BY extract(epoch FROM coalesce(processed_at, now()) - received_at))
              FROM mpesa_webhooklog
             WHERE kind = 'c2b_confirmation' AND received_at > now() - interval '5 minutes'
            """
        )
        (quantiles,) = cursor.fetchone()
    p50, p99 = quantiles if quantiles else (None, None)
    return MpesaMetrics(
        callbacks=callbacks,
        unallocated_count=unallocated_count,
        unallocated_amount=unallocated_amount,
        refunds_needing_review=needing_review,
        lock_conflict_retries=lock_conflict_retries,
        booking_latency={"0.5": p50, "0.99": p99},
    )
