from dataclasses import dataclass
from decimal import Decimal

from django.db import connection

from ledger.chart import UNALLOCATED_RECEIPTS


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
    lock_conflict_retries: int  # bookings tried again after a deadlock or serialization conflict
    # Seconds from a confirmation's arrival to its booking, over those booked in the last 5 minutes.
    booking_latency: dict[str, float | None]


def mpesa_metrics() -> MpesaMetrics:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT kind, status, count(*) FROM mpesa_webhooklog GROUP BY kind, status ORDER BY 1, 2"
        )
        callbacks = [(kind, status, count) for kind, status, count in cursor.fetchall()]
        cursor.execute("SELECT coalesce(sum(lock_conflict_retries), 0) FROM mpesa_webhooklog")
        (lock_conflict_retries,) = cursor.fetchone()
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
        lock_conflict_retries=lock_conflict_retries,
        booking_latency={"0.5": p50, "0.99": p99},
    )
