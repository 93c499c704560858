"""Real threads, each with its own database connection, hitting one customer at the same moment."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from customers.selectors import customer_position
from invoices.models import Allocation, Invoice, InvoiceStatus, Payment
from invoices.services import InvoiceLineInput, invoice_create, invoice_void, payment_receive
from ledger.chart import MPESA_CASH
from ledger.models import JournalEntry
from ledger.selectors import account_balance, ledger_verify
from tests.customers.factories import CustomerFactory
from tests.invoices.factories import InvoiceFactory, pay
from tests.threads import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal


def test_ten_payments_for_one_customer_at_once_never_over_allocate():
    customer = CustomerFactory()
    today = timezone.localdate()
    invoices = [
        InvoiceFactory(customer=customer, amount=D(amount), issue_date=today - timedelta(days=days))
        for amount, days in [("1000.00", 30), ("2500.00", 20), ("700.00", 10)]
    ]

    def work(index):
        return payment_receive(
            amount=D("500.00"),
            reference=customer.code,
            received_at=timezone.now(),
            source="test",
            source_id=f"CONCURRENT{index}",
        )

    _, errors = run_in_threads(10, work)

    assert errors == []
    paid = [Invoice.objects.get(pk=i.pk) for i in invoices]
    assert [i.status for i in paid] == [InvoiceStatus.PAID, InvoiceStatus.PAID, InvoiceStatus.PAID]
    assert sum(a.amount for a in Allocation.objects.all()) == D("4200.00")
    position = customer_position(customer.pk)
    assert (position.owed, position.credit) == (D("0.00"), D("800.00"))
    assert account_balance(MPESA_CASH) == D("5000.00")
    assert ledger_verify() == {"is_valid": True, "errors": []}


def test_the_same_receipt_delivered_by_many_threads_at_once_is_booked_once():
    invoice = InvoiceFactory(amount=D("1000.00"))

    def work(index):
        return payment_receive(
            amount=D("1000.00"),
            reference=invoice.number,
            received_at=timezone.now(),
            source="test",
            source_id="RKT1SAME01",
        )

    results, errors = run_in_threads(8, work)

    assert errors == []
    assert sum(outcome.created for outcome in results) == 1
    assert len({outcome.payment.pk for outcome in results}) == 1
    assert Payment.objects.count() == 1
    assert account_balance(MPESA_CASH) == D("1000.00")
    assert ledger_verify()["is_valid"]


def test_the_same_receipt_booked_at_once_inside_callers_transactions_is_booked_once_and_the_rest_undone():
    """Inside a caller's transaction payment_receive makes no savepoint: the losers' transactions
    fail whole (their journal entries go with them), and a retry finds the first booking."""
    invoice = InvoiceFactory(amount=D("1000.00"))

    def work(index):
        with transaction.atomic():
            return payment_receive(
                amount=D("1000.00"),
                reference=invoice.number,
                received_at=timezone.now(),
                source="test",
                source_id="RKT1SAME02",
            )

    results, errors = run_in_threads(8, work)

    assert len(results) + len(errors) == 8
    assert sum(outcome.created for outcome in results) == 1
    assert all(isinstance(error, IntegrityError) for error in errors)
    assert Payment.objects.count() == 1
    assert JournalEntry.objects.filter(cause_id="RKT1SAME02").count() == 1
    assert account_balance(MPESA_CASH) == D("1000.00")
    assert ledger_verify() == {"is_valid": True, "errors": []}
    retried = payment_receive(
        amount=D("1000.00"), reference=invoice.number, received_at=timezone.now(), source="test",
        source_id="RKT1SAME02",
    )  # fmt: skip
    assert not retried.created and retried.payment.pk == Payment.objects.get().pk


def test_invoice_numbers_stay_gap_free_when_many_are_issued_at_once():
    customers = [CustomerFactory() for _ in range(4)]

    def work(index):
        return invoice_create(
            customer=customers[index % 4],
            lines=[InvoiceLineInput(description="Water bill", quantity=1, unit_price="850.00")],
            due_date=timezone.localdate() + timedelta(days=14),
            by=None,
        ).number

    numbers, errors = run_in_threads(12, work)

    assert errors == []
    sequence = sorted(int(number.rsplit("-", 1)[1]) for number in numbers)
    assert sequence == list(range(1, 13))
    assert ledger_verify()["is_valid"]


def test_payments_new_invoices_and_a_void_at_once_never_spend_credit_twice():
    customer = CustomerFactory()
    to_void = InvoiceFactory(customer=customer, amount=D("700.00"))
    pay(to_void.number, "400.00")
    pay(customer.code, "1000.00")  # pays the last 300, then KES 700 held as credit

    def work(index):
        if index < 3:
            return invoice_create(
                customer=customer,
                lines=[InvoiceLineInput(description=f"Order {index}", quantity=1, unit_price="600.00")],
                due_date=timezone.localdate() + timedelta(days=7),
                by=None,
            )
        if index < 5:
            return pay(customer.code, "250.00", source_id=f"MIXED{index}")
        return invoice_void(invoice=to_void, reason="Returned", by=None)

    _, errors = run_in_threads(6, work)

    assert errors == []
    # 1,800 invoiced after the void; 700 + 500 paid since, + 700 returned by the void = 1,900 available.
    position = customer_position(customer.pk)
    assert (position.owed, position.credit) == (D("0.00"), D("100.00"))
    assert ledger_verify() == {"is_valid": True, "errors": []}


def test_a_payment_and_a_void_of_the_same_invoice_at_once_leave_the_books_exact():
    invoice = InvoiceFactory(amount=D("1000.00"))

    def work(index):
        if index == 0:
            return invoice_void(invoice=invoice, reason="Cancelled", by=None)
        return pay(invoice.number, "600.00", source_id=f"RACE{index}")

    _, errors = run_in_threads(3, work)

    assert errors == []
    position = customer_position(invoice.customer_id)
    assert position.owed == D("0.00")
    assert position.credit == sum(p.amount for p in Payment.objects.all())  # everything paid is credit now
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.VOID
    assert ledger_verify() == {"is_valid": True, "errors": []}
