from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from customers.selectors import customer_position
from invoices.selectors import customer_statement_get, statement_csv
from invoices.services import invoice_void
from tests.customers.factories import CustomerFactory
from tests.invoices.factories import InvoiceFactory, pay

pytestmark = pytest.mark.django_db

D = Decimal


def test_the_statement_runs_from_opening_to_a_closing_balance_equal_to_the_customers_balance():
    customer = CustomerFactory(name="Achieng Academy")
    today = timezone.localdate()
    first = InvoiceFactory(customer=customer, amount=D("1000.00"), issue_date=today - timedelta(days=40))
    InvoiceFactory(customer=customer, amount=D("2000.00"), issue_date=today - timedelta(days=5))
    pay(customer.code, "1500.00")  # pays the first in full, 500 of the second
    pay(first.number, "300.00")  # the first is paid already: the money goes to the second
    third = InvoiceFactory(customer=customer, amount=D("250.00"))
    invoice_void(invoice=third, reason="Ordered twice", by=None)
    pay(customer.code, "1500.00")  # clears the second (1,200) and leaves 300 credit

    statement = customer_statement_get(customer=customer, start=today - timedelta(days=10), end=today)

    assert statement.opening_balance == D("1000.00")  # the first invoice, issued before the period
    assert [(line.kind, line.debit, line.credit, line.balance) for line in statement.lines] == [
        ("Invoice", D("2000.00"), D("0.00"), D("3000.00")),
        ("Payment", D("0.00"), D("1500.00"), D("1500.00")),
        ("Payment", D("0.00"), D("300.00"), D("1200.00")),
        ("Invoice", D("250.00"), D("0.00"), D("1450.00")),
        ("Void", D("0.00"), D("250.00"), D("1200.00")),
        ("Payment", D("0.00"), D("1500.00"), D("-300.00")),
    ]
    assert statement.lines[4].description == f"Void of invoice {third.number}: Ordered twice"
    position = customer_position(customer.pk)
    assert statement.closing_balance == position.balance == D("-300.00")
    assert (position.owed, position.credit) == (D("0.00"), D("300.00"))


def test_a_later_period_opens_where_the_earlier_one_closed():
    customer = CustomerFactory()
    today = timezone.localdate()
    InvoiceFactory(customer=customer, amount=D("800.00"), issue_date=today - timedelta(days=20))
    pay(customer.code, "300.00", received_at=timezone.now() - timedelta(days=15))
    earlier = customer_statement_get(
        customer=customer, start=today - timedelta(days=30), end=today - timedelta(days=8)
    )
    later = customer_statement_get(customer=customer, start=today - timedelta(days=7), end=today)
    assert earlier.closing_balance == later.opening_balance == D("500.00")
    assert later.lines == []


def test_statement_csv_has_every_line_and_both_balances():
    customer = CustomerFactory(name="Otieno Hardware Ltd")
    invoice = InvoiceFactory(customer=customer, amount=D("15600.00"))
    pay(invoice.number, "5600.00")
    today = timezone.localdate()
    text = statement_csv(customer_statement_get(customer=customer, start=today, end=today))
    rows = text.strip().splitlines()
    assert rows[0] == f"Statement,{customer.code},Otieno Hardware Ltd"
    assert rows[2] == "Date,Type,Description,Debit,Credit,Balance"
    assert rows[3].endswith("Opening balance,,,,0.00")
    assert ",Invoice," in rows[4] and rows[4].endswith(",15600.00,,15600.00")
    assert ",Payment," in rows[5] and rows[5].endswith(",,5600.00,10000.00")
    assert rows[6].endswith("Closing balance,,,,10000.00")
