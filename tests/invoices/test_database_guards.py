"""What PostgreSQL refuses in receivables, proved with raw SQL around the services."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from invoices.models import Invoice
from invoices.services import invoice_void
from tests.customers.factories import CustomerFactory
from tests.invoices.factories import InvoiceFactory, pay

pytestmark = pytest.mark.django_db


def refused(statement, params=(), match=None):
    with pytest.raises(IntegrityError, match=match), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_paid_more_than_the_total_or_a_status_that_contradicts_the_amounts_is_refused():
    invoice = InvoiceFactory(amount=Decimal("1000.00"))
    refused(
        "UPDATE invoices_invoice SET amount_paid = 1000.01 WHERE id = %s", [invoice.pk], "paid_within_total"
    )
    refused(
        "UPDATE invoices_invoice SET status = 'PAID' WHERE id = %s", [invoice.pk], "status_matches_amounts"
    )
    refused(
        "UPDATE invoices_invoice SET amount_paid = 1000, status = 'PARTIALLY_PAID' WHERE id = %s",
        [invoice.pk],
        "status_matches_amounts",
    )
    assert Invoice.objects.get().status == "UNPAID"


def test_a_void_invoice_stays_void_and_paid_amounts_never_shrink():
    invoice = InvoiceFactory(amount=Decimal("1000.00"))
    pay(invoice.number, "300.00")
    refused(
        "UPDATE invoices_invoice SET amount_paid = 0, status = 'UNPAID' WHERE id = %s",
        [invoice.pk],
        "cannot go down",
    )
    refused(
        "UPDATE invoices_invoice SET total = 2000 WHERE id = %s", [invoice.pk], "total can no longer change"
    )
    refused("UPDATE invoices_invoice SET number = 'INV-X' WHERE id = %s", [invoice.pk], "keeps its number")
    invoice_void(invoice=invoice, reason="Duplicate", by=None)
    refused(
        "UPDATE invoices_invoice SET status = 'PARTIALLY_PAID', voided_at = NULL WHERE id = %s",
        [invoice.pk],
        "is void",
    )
    refused("DELETE FROM invoices_invoice WHERE id = %s", [invoice.pk], "refused")
    refused("DELETE FROM invoices_allocation", (), "refused")
    refused("DELETE FROM invoices_payment", (), "refused")


def test_one_payment_per_source_receipt_is_enforced_by_the_database():
    invoice = InvoiceFactory()
    outcome = pay(invoice.number, "10.00", source_id="RKT1UNIQUE")
    refused(
        "INSERT INTO invoices_payment (source, source_id, amount, reference, received_at, customer_id,"
        " allocated_amount, credit_amount, journal_entry_id, created_at, reallocation_reason,"
        " refund_reason)"
        " SELECT source, source_id, amount, reference, received_at, customer_id, allocated_amount,"
        " credit_amount, journal_entry_id, now(), '', '' FROM invoices_payment WHERE id = %s",
        [outcome.payment.pk],
        "one_per_source_id",
    )


def test_customer_phones_codes_and_ledger_links_are_checked_by_the_database():
    customer = CustomerFactory()
    refused(
        "UPDATE customers_customer SET phone = '0712345678' WHERE id = %s", [customer.pk], "phone_normalised"
    )
    refused("UPDATE customers_customer SET code = 'CUST-9999' WHERE id = %s", [customer.pk], "never change")
    with (
        pytest.raises(IntegrityError, match="customer_exists"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO ledger_journalentry (posted_at, memo, cause_kind, cause_id, reversal_reason,"
            " recorded_at) VALUES (now(), 'x', 'manual', '', '', now()) RETURNING id"
        )
        entry_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO ledger_journalline (entry_id, account_id, debit, credit, customer_id, posted_at)"
            " SELECT %s, id, CASE code WHEN '1010' THEN 5 ELSE 0 END,"
            " CASE code WHEN '2200' THEN 5 ELSE 0 END, 987654321, now()"
            " FROM ledger_account WHERE code IN ('1010', '2200')",
            [entry_id],
        )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
