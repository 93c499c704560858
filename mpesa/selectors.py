from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce, TruncDate

from kellyos.money import ZERO
from ledger.chart import UNALLOCATED_RECEIPTS
from mpesa.models import MpesaReceipt, ReceiptStatus

COLLECTION_KINDS = ["invoice", "customer", "sale", "unallocated", "refunded"]


def receipt_collections_by_day(
    *, start: date, end: date
) -> tuple[list[tuple[date, dict[str, Decimal]]], Decimal]:
    """M-Pesa receipts per business day (Nairobi) from `start` to `end`, split by what they paid:
    invoices named, customer accounts, till sales, the part held in suspense, and receipts since refunded
    (counted whole, apart). Summed in the database, one row per day; also the period's total received."""
    zone = ZoneInfo(settings.TIME_ZONE)
    receipts = MpesaReceipt.objects.filter(
        trans_time__gte=datetime.combine(start, time.min, tzinfo=zone),
        trans_time__lt=datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone),
    )
    kept = ~Q(status=ReceiptStatus.REFUNDED)
    sums = {
        "invoice": Sum(
            "payment__amount", filter=kept & Q(sale_payment__isnull=True, payment__invoice__isnull=False)
        ),
        "customer": Sum(
            "payment__amount", filter=kept & Q(sale_payment__isnull=True, payment__invoice__isnull=True)
        ),
        "sale": Sum(F("amount") - F("unallocated_amount"), filter=kept & Q(sale_payment__isnull=False)),
        "unallocated": Sum("unallocated_amount", filter=kept),
        "refunded": Sum("amount", filter=Q(status=ReceiptStatus.REFUNDED)),
    }
    rows = (
        receipts.annotate(day=TruncDate("trans_time", tzinfo=zone))
        .values("day")
        .annotate(**{kind: Coalesce(total, ZERO) for kind, total in sums.items()})
        .order_by("day")
    )
    days = [(row["day"], {kind: row[kind] for kind in COLLECTION_KINDS}) for row in rows]
    return days, receipts.aggregate(total=Sum("amount"))["total"] or ZERO


def mpesa_verify() -> list[str]:
    """The M-Pesa side agrees with the books: the suspense account holds exactly the unallocated parts
    of receipts, and every receipt is wholly accounted for by its payment, sale payment and suspense
    part (or was refunded by a completed reversal). Registered with ledger_verify."""
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
    return errors


@dataclass(frozen=True)
class MpesaMetrics:
    callbacks: list[tuple[str, str, int]]  # (kind, status, count)
    unallocated_count: int
    unallocated_amount: Decimal
    refunds_needing_review: int
    # Seconds from a confirmation's arrival to its booking, over those booked in the last 5 minutes.
    booking_latency: dict[str, float | None]


def mpesa_metrics() -> MpesaMetrics:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT kind, status, count(*) FROM mpesa_webhooklog GROUP BY kind, status ORDER BY 1, 2"
        )
        callbacks = [(kind, status, count) for kind, status, count in cursor.fetchall()]
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
                       ORDER BY extract(epoch FROM processed_at - received_at))
              FROM mpesa_webhooklog
             WHERE kind = 'c2b_confirmation' AND processed_at > now() - interval '5 minutes'
            """
        )
        (quantiles,) = cursor.fetchone()
    p50, p99 = quantiles if quantiles else (None, None)
    return MpesaMetrics(
        callbacks=callbacks,
        unallocated_count=unallocated_count,
        unallocated_amount=unallocated_amount,
        refunds_needing_review=needing_review,
        booking_latency={"0.5": p50, "0.99": p99},
    )
