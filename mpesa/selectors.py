from django.db import connection

from ledger.chart import UNALLOCATED_RECEIPTS
from mpesa.models import ReceiptStatus


def mpesa_verify() -> list[str]:
    """The M-Pesa side agrees with the books: the suspense account holds exactly the unallocated
    receipts, and every allocated receipt has its payment for the same amount. Registered with
    ledger_verify."""
    errors = []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT (SELECT coalesce(sum(l.credit - l.debit), 0) FROM ledger_journalline l
                      JOIN ledger_account a ON a.id = l.account_id WHERE a.code = %s),
                   (SELECT coalesce(sum(amount), 0) FROM mpesa_mpesareceipt WHERE status = %s)
            """,
            [UNALLOCATED_RECEIPTS, ReceiptStatus.UNALLOCATED],
        )
        suspense, unallocated = cursor.fetchone()
        if suspense != unallocated:
            errors.append(
                f"Account {UNALLOCATED_RECEIPTS} holds {suspense} but the unallocated M-Pesa receipts "
                f"add up to {unallocated}."
            )
        cursor.execute(
            """
            SELECT r.trans_id, r.amount, p.amount FROM mpesa_mpesareceipt r
              JOIN invoices_payment p ON p.id = r.payment_id
             WHERE p.amount <> r.amount OR p.source_id <> r.trans_id
            """
        )
        errors += [
            f"M-Pesa receipt {trans_id} for {amount} is booked as a payment of {paid}."
            for trans_id, amount, paid in cursor.fetchall()
        ]
    return errors
