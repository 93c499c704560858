"""What an account number typed on the PayBill can mean. One entry per kind of reference (invoice
number, customer code, till sale number). Each kind says whether a reference is one of its own, whether
a payment of some amount would be welcome (for validation), and books a receipt to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from customers.models import Customer
from customers.selectors import customer_code_normalize, customer_id_by_code
from invoices.models import Payment
from invoices.selectors import PaymentTarget, invoice_number_normalize, invoice_payment_target
from invoices.services import payment_receive
from mpesa.exceptions import MpesaError
from mpesa.models import UnallocatedReason
from pos.models import Sale, SalePayment, SaleStatus
from pos.selectors import sale_get_by_reference
from pos.services import sale_payment_apply

MPESA_SOURCE = "mpesa"


@dataclass(frozen=True)
class ReferenceMatch:
    kind: str
    customer_id: int | None  # None for a till sale: no customer account behind it
    label: str
    sale: Sale | None = None
    payment_target: PaymentTarget | None = None  # an invoice or customer: what receivables books to


@dataclass(frozen=True)
class Booking:
    """What booking a receipt to a reference did; `excess` is what it could not take, and why."""

    payment: Payment | None = None
    sale_payment: SalePayment | None = None
    excess: Decimal = Decimal("0.00")
    excess_reason: str = ""
    excess_detail: str = ""


class ReferenceKind(Protocol):
    name: str

    def match(self, reference: str) -> ReferenceMatch | None: ...

    def refusal(self, match: ReferenceMatch, amount: Decimal) -> str | None:
        """Why validation should refuse this amount here: "account" or "amount"; None to accept."""
        ...

    def book(
        self,
        *,
        match: ReferenceMatch,
        reference: str,
        amount: Decimal,
        received_at: datetime,
        trans_id: str,
        received_into: str,
        payer_name: str,
        locked_customer: Customer | None = None,
    ) -> Booking:
        """`locked_customer`: the match's customer, when the caller already holds its row lock in
        this transaction (it checked the payer's daily limit under it)."""
        ...


class _ReceivablesReference:
    """Invoice numbers and customer codes both book through the receivables service."""

    name = ""

    def refusal(self, match: ReferenceMatch, amount: Decimal) -> str | None:
        return None

    def book(
        self,
        *,
        match: ReferenceMatch,
        reference: str,
        amount: Decimal,
        received_at: datetime,
        trans_id: str,
        received_into: str,
        payer_name: str,
        locked_customer: Customer | None = None,
    ) -> Booking:
        outcome = payment_receive(
            amount=amount,
            reference=reference,
            received_at=received_at,
            source=MPESA_SOURCE,
            source_id=trans_id,
            received_into=received_into,
            target=match.payment_target,
            locked_customer=locked_customer,
        )
        if outcome.differences:
            raise MpesaError(
                f"Receipt {trans_id} was already booked as a payment, with different details: "
                + "; ".join(outcome.differences)
            )
        return Booking(payment=outcome.payment)


class InvoiceNumberReference(_ReceivablesReference):
    name = "invoice"

    def match(self, reference: str) -> ReferenceMatch | None:
        number = invoice_number_normalize(reference)
        target = invoice_payment_target(number) if number else None
        if target is None:
            return None
        return ReferenceMatch(self.name, target.customer_id, number or "", payment_target=target)


class CustomerCodeReference(_ReceivablesReference):
    name = "customer"

    def match(self, reference: str) -> ReferenceMatch | None:
        code = customer_code_normalize(reference)
        customer_id = customer_id_by_code(code) if code else None
        if customer_id is None:
            return None
        target = PaymentTarget(customer_id=customer_id, invoice_id=None)
        return ReferenceMatch(self.name, customer_id, code or "", payment_target=target)


class SaleReference:
    name = "sale"

    def match(self, reference: str) -> ReferenceMatch | None:
        sale = sale_get_by_reference(reference)
        return ReferenceMatch(self.name, None, sale.reference, sale=sale) if sale else None

    def refusal(self, match: ReferenceMatch, amount: Decimal) -> str | None:
        assert match.sale is not None
        if match.sale.status != SaleStatus.PENDING:
            return "account"
        return "amount" if amount > match.sale.balance_due else None

    def book(
        self,
        *,
        match: ReferenceMatch,
        reference: str,
        amount: Decimal,
        received_at: datetime,
        trans_id: str,
        received_into: str,
        payer_name: str,
        locked_customer: Customer | None = None,
    ) -> Booking:
        assert match.sale is not None
        outcome = sale_payment_apply(
            sale=match.sale,
            amount=amount,
            received_at=received_at,
            source=MPESA_SOURCE,
            source_id=trans_id,
            payer_name=payer_name,
            received_into=received_into,
        )
        closed = outcome.payment is None
        return Booking(
            sale_payment=outcome.payment,
            excess=outcome.excess,
            excess_reason=UnallocatedReason.SALE_CLOSED if closed else UnallocatedReason.SALE_OVERPAID,
            excess_detail=outcome.reason,
        )


REFERENCE_KINDS: list[ReferenceKind] = [InvoiceNumberReference(), CustomerCodeReference(), SaleReference()]


def reference_match(reference: str) -> tuple[ReferenceKind, ReferenceMatch] | None:
    for kind in REFERENCE_KINDS:
        found = kind.match(reference)
        if found is not None:
            return kind, found
    return None
