from datetime import date, timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from invoices.models import Invoice
from invoices.services import InvoiceLineInput, invoice_create, payment_receive
from tests.customers.factories import CustomerFactory


class InvoiceFactory(factory.Factory):
    """An invoice of one line for `amount`, issued through the service."""

    class Meta:
        model = Invoice

    customer = factory.SubFactory(CustomerFactory)
    amount = Decimal("1000.00")
    description = "School fees"
    issue_date = None
    due_date = None

    @classmethod
    def _create(cls, model_class, **kwargs):
        issue_date = kwargs["issue_date"] or timezone.localdate()
        return invoice_create(
            customer=kwargs["customer"],
            lines=[
                InvoiceLineInput(description=kwargs["description"], quantity=1, unit_price=kwargs["amount"])
            ],
            due_date=kwargs["due_date"] or issue_date + timedelta(days=30),
            issue_date=issue_date,
            by=None,
        )


_receipts = iter(range(1, 10**9))


def pay(reference, amount, *, source_id=None, received_at=None):
    """Receive a payment the way any channel would."""
    return payment_receive(
        amount=amount,
        reference=reference,
        received_at=received_at or timezone.now(),
        source="test",
        source_id=source_id or f"RCPT{next(_receipts):06d}",
    )


def days_ago(days: int) -> date:
    return timezone.localdate() - timedelta(days=days)
