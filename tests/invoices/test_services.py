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
from invoices.services import (
    InvoiceLineInput,
    invoice_create,
    invoice_lines_replace,
    invoice_void,
    payment_receive,
)
from ledger.chart import ACCOUNTS_RECEIVABLE, CUSTOMER_CREDIT, MPESA_CASH, SALES_REVENUE
from ledger.models import JournalEntry
from ledger.selectors import account_balance, ledger_verify
from tests.customers.factories import CustomerFactory
from tests.invoices.factories import InvoiceFactory, days_ago, pay

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
        due_date=days_ago(10) + timedelta(days=30),
        issue_date=days_ago(10),
        by=None,
    )
    second = InvoiceFactory(customer=customer, issue_date=days_ago(10))
    next_day = InvoiceFactory(customer=customer, issue_date=days_ago(9))
    assert (invoice.number, second.number, next_day.number) == (
        f"INV-{days_ago(10):%Y%m%d}-0001",
        f"INV-{days_ago(10):%Y%m%d}-0002",
        f"INV-{days_ago(9):%Y%m%d}-0001",
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
    oldest = InvoiceFactory(customer=customer, amount=D("1000.00"), issue_date=days_ago(50))
    middle = InvoiceFactory(customer=customer, amount=D("2000.00"), issue_date=days_ago(40))
    newest = InvoiceFactory(customer=customer, amount=D("3000.00"), issue_date=days_ago(30))

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
    invoice = InvoiceFactory(amount=D("2500.00"), issue_date=days_ago(3))
    pay(f" inv-{days_ago(3):%Y%m%d}-0001 ", "2500.00")
    (invoice,) = refreshed(invoice)
    assert invoice.status == InvoiceStatus.PAID
    assert customer_position(invoice.customer_id).balance == D("0.00")
    assert ledger_verify()["is_valid"]


def test_an_invoice_payment_goes_to_that_invoice_even_when_older_ones_are_open():
    customer = CustomerFactory()
    older = InvoiceFactory(customer=customer, issue_date=days_ago(20))
    named = InvoiceFactory(customer=customer, issue_date=days_ago(5))
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


def test_money_left_after_the_named_invoice_pays_the_oldest_other_invoices_before_becoming_credit():
    customer = CustomerFactory()
    older = InvoiceFactory(customer=customer, amount=D("1000.00"), issue_date=days_ago(20))
    named = InvoiceFactory(customer=customer, amount=D("500.00"), issue_date=days_ago(5))
    outcome = pay(named.number, "1800.00")
    older, named = refreshed(older, named)
    assert (named.status, older.status) == (InvoiceStatus.PAID, InvoiceStatus.PAID)
    assert outcome.payment.credit_amount == D("300.00")
    assert customer_position(customer.pk).credit == D("300.00")


def test_credit_from_a_void_is_applied_to_the_other_open_invoices_at_once():
    customer = CustomerFactory()
    paid_one = InvoiceFactory(customer=customer, amount=D("800.00"), issue_date=days_ago(10))
    pay(paid_one.number, "800.00")
    still_open = InvoiceFactory(customer=customer, amount=D("500.00"))
    invoice_void(invoice=paid_one, reason="Wrong customer", by=None)
    (still_open,) = refreshed(still_open)
    assert still_open.status == InvoiceStatus.PAID
    position = customer_position(customer.pk)
    assert (position.owed, position.credit) == (D("0.00"), D("300.00"))
    assert ledger_verify()["is_valid"]


def test_a_repeat_with_different_details_is_reported_not_booked():
    invoice = InvoiceFactory(amount=D("1000.00"))
    pay(invoice.number, "400.00", source_id="RKT1DIFF01")
    again = payment_receive(
        amount="450.00",
        reference="someone else",
        received_at=timezone.now(),
        source=" TEST ",
        source_id=" RKT1DIFF01 ",
    )
    assert not again.created
    assert again.differences == [
        "amount 450.00 differs from the first delivery's 400.00",
        f"reference 'someone else' differs from the first delivery's '{invoice.number}'",
    ]
    assert Payment.objects.count() == 1


@pytest.mark.parametrize("received_at", ["naive", "tomorrow"])
def test_a_payment_time_must_be_a_real_past_moment(received_at):
    customer = CustomerFactory()
    moment = (
        timezone.now() + timedelta(days=1)
        if received_at == "tomorrow"
        else timezone.now().replace(tzinfo=None)
    )
    with pytest.raises(InvalidPaymentError, match="real, past moment"):
        payment_receive(
            amount="10", reference=customer.code, received_at=moment, source="test", source_id="X1"
        )
    assert not Payment.objects.exists()


def test_invoices_cannot_be_dated_far_back_or_in_the_future():
    customer = CustomerFactory()
    for issue_date in (days_ago(61), days_ago(-1)):
        with pytest.raises(InvoiceValidationError) as error:
            InvoiceFactory(customer=customer, issue_date=issue_date, due_date=days_ago(-40))
        assert "issue_date" in error.value.errors
    assert not Invoice.objects.exists()


def test_an_unpaid_invoice_can_be_corrected_and_the_books_follow():
    invoice = InvoiceFactory(amount=D("1000.00"))
    corrected = invoice_lines_replace(
        invoice=invoice,
        lines=[
            InvoiceLineInput(description="School fees (sibling discount)", quantity=1, unit_price="850.00")
        ],
        by=None,
    )
    assert corrected.total == D("850.00") and corrected.number == invoice.number
    assert [line.description for line in corrected.lines.all()] == ["School fees (sibling discount)"]
    assert account_balance(ACCOUNTS_RECEIVABLE) == D("850.00")
    assert account_balance(SALES_REVENUE) == D("850.00")
    assert ledger_verify()["is_valid"]
    invoice_void(invoice=corrected, reason="Left the school", by=None)  # reverses the corrected posting
    assert account_balance(SALES_REVENUE) == D("0.00")
    assert ledger_verify()["is_valid"]


def test_an_invoice_with_money_on_it_cannot_be_corrected():
    invoice = InvoiceFactory(amount=D("1000.00"))
    pay(invoice.number, "100.00")
    with pytest.raises(InvoiceValidationError, match="only unpaid invoices"):
        invoice_lines_replace(
            invoice=invoice, lines=[InvoiceLineInput(description="x", quantity=1, unit_price="5")], by=None
        )
    assert refreshed(invoice)[0].total == D("1000.00")
