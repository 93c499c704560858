"""What an account number typed on the PayBill can mean. One entry per kind of reference; the POS
adds sale numbers. Each kind says whether a reference is one of its own and books a receipt to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from customers.models import Customer
from customers.selectors import customer_code_normalize
from invoices.models import Invoice, Payment
from invoices.selectors import invoice_number_normalize
from invoices.services import payment_receive
from mpesa.exceptions import MpesaError

MPESA_SOURCE = "mpesa"


@dataclass(frozen=True)
class ReferenceMatch:
    kind: str
    customer_id: int
    label: str


class ReferenceKind(Protocol):
    name: str

    def match(self, reference: str) -> ReferenceMatch | None: ...

    def book(
        self,
        *,
        match: ReferenceMatch,
        reference: str,
        amount: Decimal,
        received_at: datetime,
        trans_id: str,
        received_into: str,
    ) -> Payment: ...


class _ReceivablesReference:
    """Invoice numbers and customer codes both book through the receivables service."""

    name = ""

    def book(
        self,
        *,
        match: ReferenceMatch,
        reference: str,
        amount: Decimal,
        received_at: datetime,
        trans_id: str,
        received_into: str,
    ) -> Payment:
        outcome = payment_receive(
            amount=amount,
            reference=reference,
            received_at=received_at,
            source=MPESA_SOURCE,
            source_id=trans_id,
            received_into=received_into,
        )
        if outcome.differences:
            raise MpesaError(
                f"Receipt {trans_id} was already booked as a payment, with different details: "
                + "; ".join(outcome.differences)
            )
        return outcome.payment


class InvoiceNumberReference(_ReceivablesReference):
    name = "invoice"

    def match(self, reference: str) -> ReferenceMatch | None:
        number = invoice_number_normalize(reference)
        invoice = Invoice.objects.filter(number=number).values("customer_id").first() if number else None
        return ReferenceMatch(self.name, invoice["customer_id"], number or "") if invoice else None


class CustomerCodeReference(_ReceivablesReference):
    name = "customer"

    def match(self, reference: str) -> ReferenceMatch | None:
        code = customer_code_normalize(reference)
        customer_id = (
            Customer.objects.filter(code=code).values_list("pk", flat=True).first() if code else None
        )
        return ReferenceMatch(self.name, customer_id, code or "") if customer_id else None


REFERENCE_KINDS: list[ReferenceKind] = [InvoiceNumberReference(), CustomerCodeReference()]


def reference_match(reference: str) -> tuple[ReferenceKind, ReferenceMatch] | None:
    for kind in REFERENCE_KINDS:
        found = kind.match(reference)
        if found is not None:
            return kind, found
    return None
