"""ledger_verify also proves the receivables agree with the books."""

from decimal import Decimal

import pytest
from django.db import connection

from ledger.selectors import ledger_verify
from tests.customers.factories import CustomerFactory
from tests.invoices.factories import InvoiceFactory, pay
from tests.ledger.factories import PostedEntryFactory

pytestmark = pytest.mark.django_db


def test_receivables_that_agree_with_the_ledger_verify():
    invoice = InvoiceFactory(amount=Decimal("1000.00"))
    pay(invoice.number, "1200.00")
    assert ledger_verify() == {"is_valid": True, "errors": []}


def test_an_invoice_changed_behind_the_services_is_reported():
    invoice = InvoiceFactory(amount=Decimal("1000.00"))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE invoices_invoice SET amount_paid = 100, status = 'PARTIALLY_PAID' WHERE id = %s",
            [invoice.pk],
        )
    errors = ledger_verify()["errors"]
    code = invoice.customer.code
    assert f"Customer {code}: receivable in the ledger 1000.00 <> open invoices 900.00." in errors
    assert f"Invoice {invoice.number}: amount paid 100.00 <> its allocations 0." in errors


def test_receivables_posted_without_a_customer_are_reported():
    CustomerFactory()
    PostedEntryFactory(amount=Decimal("50.00"), debit_account="1200", credit_account="4000")
    assert ledger_verify()["errors"] == [
        "Account 1200 has 50.00 posted without a customer, so it differs from the customers' total."
    ]


def test_invoice_lines_that_no_longer_add_up_are_reported():
    invoice = InvoiceFactory(amount=Decimal("200.00"))
    with connection.cursor() as cursor:
        cursor.execute("UPDATE invoices_invoiceline SET line_total = 500 WHERE invoice_id = %s", [invoice.pk])
    expected = (
        f"Invoice {invoice.number}: total 200.00 <> its lines 500.00,"
        " and 1 line(s) are not quantity x unit price."
    )
    assert expected in ledger_verify()["errors"]
