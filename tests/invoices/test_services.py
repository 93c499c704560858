from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from customers.selectors import customer_position
from invoices.exceptions import (
    InvalidPaymentError,
    InvoiceAlreadyVoidError,
    InvoiceValidationError,
    UnknownPaymentReferenceError,
)
from invoices.models import Allocation, AllocationKind, Invoice, InvoiceStatus, Payment
from invoices.services import InvoiceLineInput, invoice_create, invoice_void
from ledger.chart import ACCOUNTS_RECEIVABLE, CUSTOMER_CREDIT, MPESA_CASH, SALES_REVENUE
from ledger.models import JournalEntry
from ledger.selectors import account_balance, ledger_verify
from tests.customers.factories import CustomerFactory
from tests.invoices.factories import InvoiceFactory, day, pay

pytestmark = pytest.mark.django_db

D = Decimal


def refreshed(*invoices):
    return [Invoice.objects.get(pk=i.pk) for i in invoices]


def test_invoice_numbers_run_per_day_and_lines_add_up():
    customer = CustomerFactory()
    invoice = invoice_create(
        customer=customer,
        lines=[
            InvoiceLineInput(description="Maize flour 2kg", quantity="3", unit_price="230.00"),
            InvoiceLineInput(description="Sugar 1kg", quantity="1.5", unit_price="199.99"),
        ],
        due_date=day("2026-03-31"),
        issue_date=day("2026-03-01"),
        by=None,
    )
    second = InvoiceFactory(customer=customer, issue_date=day("2026-03-01"))
    next_day = InvoiceFactory(customer=customer, issue_date=day("2026-03-02"))
    assert (invoice.number, second.number, next_day.number) == (
        "INV-20260301-0001",
        "INV-20260301-0002",
        "INV-20260302-0001",
    )
    assert [line.line_total for line in invoice.lines.all()] == [
        D("690.00"),
        D("299.99"),
    ]  # 299.985 rounds up
    assert invoice.total == D("989.99")
    assert invoice.status == InvoiceStatus.UNPAID
    assert account_balance(ACCOUNTS_RECEIVABLE) == D("2989.99")
    assert account_balance(SALES_REVENUE) == D("2989.99")
    assert customer_position(customer.pk).owed == D("2989.99")
    assert ledger_verify() == {"is_valid": True, "errors": []}


def test_a_customer_code_payment_pays_the_oldest_invoices_first():
    customer = CustomerFactory()
    oldest = InvoiceFactory(customer=customer, amount=D("1000.00"), issue_date=day("2026-01-05"))
    middle = InvoiceFactory(customer=customer, amount=D("2000.00"), issue_date=day("2026-01-10"))
    newest = InvoiceFactory(customer=customer, amount=D("3000.00"), issue_date=day("2026-01-20"))

    outcome = pay(customer.code, "4500.00")

    oldest, middle, newest = refreshed(oldest, middle, newest)
    assert (oldest.status, middle.status, newest.status) == (
        InvoiceStatus.PAID,
        InvoiceStatus.PAID,
        InvoiceStatus.PARTIALLY_PAID,
    )
    assert newest.amount_paid == D("1500.00") and newest.balance_due == D("1500.00")
    assert [(a.invoice.number, a.amount) for a in outcome.payment.allocations.order_by("id")] == [
        (oldest.number, D("1000.00")),
        (middle.number, D("2000.00")),
        (newest.number, D("1500.00")),
    ]
    assert outcome.payment.credit_amount == D("0.00")
    assert account_balance(MPESA_CASH) == D("4500.00")
    assert customer_position(customer.pk).owed == D("1500.00")
    assert ledger_verify()["is_valid"]


def test_an_exact_payment_by_invoice_number_pays_it_even_typed_sloppily():
    invoice = InvoiceFactory(amount=D("2500.00"), issue_date=day("2026-02-03"))
    pay(" inv-20260203-0001 ", "2500.00")
    (invoice,) = refreshed(invoice)
    assert invoice.status == InvoiceStatus.PAID
    assert customer_position(invoice.customer_id).balance == D("0.00")
    assert ledger_verify()["is_valid"]


def test_an_invoice_payment_goes_to_that_invoice_even_when_older_ones_are_open():
    customer = CustomerFactory()
    older = InvoiceFactory(customer=customer, issue_date=day("2026-01-01"))
    named = InvoiceFactory(customer=customer, issue_date=day("2026-01-15"))
    pay(named.number, "400.00")
    older, named = refreshed(older, named)
    assert older.amount_paid == D("0.00")
    assert named.amount_paid == D("400.00")


def test_overpayment_becomes_credit_and_the_next_invoice_uses_it():
    customer = CustomerFactory()
    invoice = InvoiceFactory(customer=customer, amount=D("1000.00"))
    pay(invoice.number, "1600.00")
    assert customer_position(customer.pk).credit == D("600.00")
    assert account_balance(CUSTOMER_CREDIT) == D("600.00")

    next_invoice = InvoiceFactory(customer=customer, amount=D("1000.00"))

    assert next_invoice.status == InvoiceStatus.PARTIALLY_PAID
    assert next_invoice.amount_paid == D("600.00")
    credit_allocation = Allocation.objects.get(invoice=next_invoice)
    assert credit_allocation.kind == AllocationKind.CREDIT and credit_allocation.payment is None
    position = customer_position(customer.pk)
    assert (position.owed, position.credit, position.balance) == (D("400.00"), D("0.00"), D("400.00"))
    assert account_balance(CUSTOMER_CREDIT) == D("0.00")
    assert ledger_verify()["is_valid"]


def test_an_invoice_can_be_born_paid_from_credit():
    customer = CustomerFactory()
    pay(customer.code, "5000.00")  # a prepayment: no invoices yet
    invoice = InvoiceFactory(customer=customer, amount=D("3000.00"))
    assert invoice.status == InvoiceStatus.PAID
    assert customer_position(customer.pk).credit == D("2000.00")


def test_voiding_a_partly_paid_invoice_turns_what_was_paid_into_credit():
    accountant_reason = "Duplicate invoice"
    invoice = InvoiceFactory(amount=D("1000.00"))
    pay(invoice.number, "300.00")

    voided = invoice_void(invoice=invoice, reason=accountant_reason, by=None)

    assert voided.status == InvoiceStatus.VOID and voided.void_reason == accountant_reason
    assert voided.balance_due == D("0.00")
    position = customer_position(invoice.customer_id)
    assert (position.owed, position.credit, position.balance) == (D("0.00"), D("300.00"), D("-300.00"))
    assert account_balance(SALES_REVENUE) == D("0.00")
    assert account_balance(MPESA_CASH) == D("300.00")
    assert JournalEntry.objects.filter(reverses=invoice.journal_entry).exists()
    assert ledger_verify()["is_valid"]
    with pytest.raises(InvoiceAlreadyVoidError):
        invoice_void(invoice=voided, reason="again", by=None)


def test_a_payment_to_a_void_or_paid_invoice_becomes_credit():
    invoice = InvoiceFactory(amount=D("500.00"))
    invoice_void(invoice=invoice, reason="Issued in error", by=None)
    outcome = pay(invoice.number, "500.00")
    assert outcome.payment.credit_amount == D("500.00")
    assert customer_position(invoice.customer_id).credit == D("500.00")
    assert ledger_verify()["is_valid"]


def test_the_same_receipt_is_booked_once():
    invoice = InvoiceFactory(amount=D("1000.00"))
    first = pay(invoice.number, "400.00", source_id="RKT1ABC123")
    again = pay(invoice.number, "400.00", source_id="RKT1ABC123")
    assert first.created and not again.created
    assert again.payment == first.payment
    assert Payment.objects.count() == 1
    assert refreshed(invoice)[0].amount_paid == D("400.00")
    assert account_balance(MPESA_CASH) == D("400.00")


def test_an_unknown_reference_is_refused_and_nothing_is_booked():
    CustomerFactory()
    with pytest.raises(UnknownPaymentReferenceError, match="SHULE"):
        pay("SHULE", "100.00")
    assert not Payment.objects.exists()
    assert not JournalEntry.objects.filter(cause_kind="receipt").exists()


@pytest.mark.parametrize("amount", ["0", "-5", "10.001", "abc"])
def test_bad_payment_amounts_are_refused(amount):
    customer = CustomerFactory()
    with pytest.raises(InvalidPaymentError):
        pay(customer.code, amount)
    assert not Payment.objects.exists()


def test_bad_invoices_are_refused_with_a_message_per_field_and_nothing_written():
    customer = CustomerFactory()
    with pytest.raises(InvoiceValidationError) as error:
        invoice_create(
            customer=customer,
            lines=[
                InvoiceLineInput(description="", quantity="1", unit_price="10"),
                InvoiceLineInput(description="Bread", quantity="0", unit_price="10"),
                InvoiceLineInput(description="Milk", quantity="1", unit_price="10.005"),
            ],
            due_date=timezone.localdate() - timedelta(days=1),
            by=None,
        )
    assert set(error.value.errors) == {"due_date", "lines[1]", "lines[2]", "lines[3]"}
    assert not Invoice.objects.exists() and not JournalEntry.objects.exists()


def test_customer_codes_are_sequential_and_references_find_them_loosely():
    first, second = CustomerFactory(), CustomerFactory()
    assert int(second.code.removeprefix("CUST-")) == int(first.code.removeprefix("CUST-")) + 1
    invoice = InvoiceFactory(customer=second, amount=D("100.00"))
    number = int(second.code.removeprefix("CUST-"))
    pay(f" cust {number} ", "100.00")
    assert refreshed(invoice)[0].status == InvoiceStatus.PAID
