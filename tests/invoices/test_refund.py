"""A payment whose money went back to the payer: posting reversed, allocations undone, once."""

from datetime import date
from decimal import Decimal

import pytest
from django.utils import timezone

from customers.selectors import customer_position
from invoices.exceptions import ReceivablesError
from invoices.models import InvoiceStatus
from invoices.selectors import customer_statement_get
from invoices.services import InvoiceLineInput, invoice_create, payment_refund
from ledger.selectors import ledger_verify
from tests.invoices.factories import InvoiceFactory, pay

pytestmark = pytest.mark.django_db


def test_a_refunded_payment_reopens_its_invoices_and_takes_back_its_credit():
    invoice = InvoiceFactory(amount=Decimal("1000.00"))
    payment = pay(invoice.number, "1200.00").payment
    assert customer_position(invoice.customer_id).credit == Decimal("200.00")

    payment_refund(payment=payment, reason="Paid twice by mistake", by=None)

    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == (InvoiceStatus.UNPAID, Decimal("0.00"))
    position = customer_position(invoice.customer_id)
    assert (position.owed, position.credit) == (Decimal("1000.00"), Decimal("0.00"))
    payment.refresh_from_db()
    assert payment.refunded_at is not None and payment.refund_reason == "Paid twice by mistake"
    assert ledger_verify()["is_valid"]
    today = timezone.localdate()
    statement = customer_statement_get(customer=invoice.customer, start=today, end=today)
    assert statement.closing_balance == Decimal("1000.00")
    assert any("refunded" in line.description for line in statement.lines)
    with pytest.raises(ReceivablesError, match="already been moved or refunded"):
        payment_refund(payment=payment, reason="again", by=None)


def test_a_payment_whose_credit_was_spent_is_not_refunded():
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    payment = pay(invoice.number, "600.00").payment
    invoice_create(
        customer=invoice.customer,
        lines=[InvoiceLineInput(description="Term 2", quantity=1, unit_price="500.00")],
        due_date=date.today(),
        by=None,
    )  # the credit is applied to it at once
    with pytest.raises(ReceivablesError, match="has been used since"):
        payment_refund(payment=payment, reason="Customer asked", by=None)
    assert ledger_verify()["is_valid"]
