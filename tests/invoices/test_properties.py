"""Random sequences of invoices, payments and voids; every invariant checked after every step."""

import contextlib
from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from customers.selectors import customer_position
from invoices.exceptions import InvoiceAlreadyVoidError, InvoiceValidationError
from invoices.models import Invoice, InvoiceStatus, Payment
from invoices.selectors import customer_statement_get
from invoices.services import (
    InvoiceLineInput,
    invoice_create,
    invoice_lines_replace,
    invoice_void,
    payment_receive,
)
from ledger.chart import MPESA_CASH
from ledger.selectors import account_balance, ledger_verify, trial_balance
from tests.customers.factories import CustomerFactory
from tests.ledger.factories import chart_of_accounts_ensure

CUSTOMERS = 3
amounts = st.integers(min_value=1, max_value=5_000_00).map(lambda cents: Decimal(cents) / 100)
days_back = st.integers(
    min_value=0, max_value=60
)  # invoices issued, and payments received, up to 60 days ago
operations = st.lists(
    st.one_of(
        st.tuples(st.just("invoice"), st.integers(0, CUSTOMERS - 1), amounts, days_back),
        st.tuples(st.just("pay_customer"), st.integers(0, CUSTOMERS - 1), amounts, days_back),
        st.tuples(st.just("pay_invoice"), st.integers(0, 30), amounts, days_back),
        st.tuples(st.just("void"), st.integers(0, 30), st.just(Decimal(0)), st.just(0)),
        st.tuples(st.just("correct"), st.integers(0, 30), amounts, st.just(0)),
    ),
    max_size=14,
)


class ReceivablesProperties(TestCase):
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(operations)
    def test_every_invariant_holds_after_every_step(self, steps):
        chart_of_accounts_ensure()
        customers = [CustomerFactory() for _ in range(CUSTOMERS)]
        today = timezone.localdate()
        for number, (operation, index, amount, days) in enumerate(steps):
            invoices = list(Invoice.objects.order_by("pk"))
            if operation == "invoice":
                invoice_create(
                    customer=customers[index],
                    lines=[InvoiceLineInput(description="Goods", quantity=1, unit_price=amount)],
                    issue_date=today - timedelta(days=days),
                    due_date=today + timedelta(days=30),
                    by=None,
                )
            elif operation == "pay_customer":
                self._pay(customers[index].code, amount, number, days)
            elif operation == "pay_invoice" and invoices:
                self._pay(invoices[index % len(invoices)].number, amount, number, days)
            elif operation == "correct" and invoices:
                invoice = invoices[index % len(invoices)]
                lines = [InvoiceLineInput(description="Corrected", quantity=1, unit_price=amount)]
                if invoice.status == InvoiceStatus.UNPAID:
                    invoice_lines_replace(invoice=invoice, lines=lines, by=None)
                else:
                    with self.assertRaises(InvoiceValidationError):
                        invoice_lines_replace(invoice=invoice, lines=lines, by=None)
            elif operation == "void" and invoices:
                with contextlib.suppress(InvoiceAlreadyVoidError):  # voiding twice is refused; fine here
                    invoice_void(invoice=invoices[index % len(invoices)], reason="property test", by=None)
            self._assert_invariants(customers, today)

    @staticmethod
    def _pay(reference, amount, number, days):
        payment_receive(
            amount=amount,
            reference=reference,
            received_at=timezone.now() - timedelta(days=days),
            source="prop",
            source_id=f"P{number}",
        )

    def _assert_invariants(self, customers, today):
        with connection.cursor() as cursor:  # fire the deferred balance checks now, not at a commit
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        assert ledger_verify() == {"is_valid": True, "errors": []}
        assert trial_balance().is_balanced
        assert account_balance(MPESA_CASH) == sum((p.amount for p in Payment.objects.all()), Decimal(0))
        for invoice in Invoice.objects.all():
            assert Decimal(0) <= invoice.amount_paid <= invoice.total
            expected = (
                InvoiceStatus.VOID
                if invoice.voided_at
                else InvoiceStatus.UNPAID
                if invoice.amount_paid == 0
                else InvoiceStatus.PAID
                if invoice.amount_paid == invoice.total
                else InvoiceStatus.PARTIALLY_PAID
            )
            assert invoice.status == expected
        for customer in customers:
            position = customer_position(customer.pk)
            open_due = sum((i.balance_due for i in Invoice.objects.filter(customer=customer)), Decimal(0))
            assert position.owed == open_due
            assert position.credit >= 0
            assert position.credit == 0 or position.owed == 0  # credit never sits beside open invoices
            statement = customer_statement_get(customer=customer, start=today - timedelta(days=90), end=today)
            assert statement.closing_balance == position.balance
