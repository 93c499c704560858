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
