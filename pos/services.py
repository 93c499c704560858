"""Till sales: ring up, cancel, and take payments. Revenue is booked as money arrives (DR the cash
account / CR 4000 Sales Revenue); the sale is PAID when its total has arrived."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from kellyos.audit import audit_record
from kellyos.events import event_publish
from kellyos.money import MAX_AMOUNT, ZERO, InvalidAmountError, to_kes
from ledger.chart import MPESA_CASH, SALES_REVENUE
from ledger.models import CauseKind
from ledger.services import JournalLineInput, journal_entry_post, journal_entry_reverse
from pos.exceptions import SaleError, SaleValidationError
from pos.models import Product, Sale, SaleLine, SalePayment, SaleStatus


@dataclass(frozen=True)
class SaleLineInput:
    quantity: int
    product: Product | None = None
    description: str = ""
    unit_price: Decimal | int | str | None = None  # a free-text item's price; a product's by default


@dataclass(frozen=True)
class SalePaymentOutcome:
    payment: SalePayment | None  # None when nothing could be applied
    excess: Decimal  # what the sale could not take (overpaid, or the sale is not pending)
    reason: str  # why there is an excess, in words a clerk can act on


def sale_create(*, lines: Sequence[SaleLineInput], cashier: User) -> Sale:
    prepared = _validated_lines(lines)
    with transaction.atomic():
        sale = Sale.objects.create(total=sum((line.line_total for line in prepared), ZERO), cashier=cashier)
        for line in prepared:
            line.sale = sale
        SaleLine.objects.bulk_create(prepared)
    sale.refresh_from_db(fields=["reference"])
    return sale


def sale_cancel(*, sale: Sale, by: User) -> Sale:
    with transaction.atomic():
        sale = Sale.objects.select_for_update().get(pk=sale.pk)
        if sale.status != SaleStatus.PENDING:
            status = sale.get_status_display().lower()
            raise SaleError(f"Sale {sale.reference} is {status}; only pending sales can be cancelled.")
        if sale.amount_paid > 0:
            raise SaleError(
                f"Sale {sale.reference} has KES {sale.amount_paid} paid on it; take the rest, or ask the "
                "accountant to refund it, instead of cancelling."
            )
        sale.status = SaleStatus.CANCELLED
        sale.cancelled_at = timezone.now()
        sale.save(update_fields=["status", "cancelled_at"])
        _announce(sale)
        audit_record(
            action="sale.cancel", subject=f"sale {sale.reference}", by=by, summary="Cancelled by the cashier."
        )
    return sale


def sale_payment_apply(
    *,
    sale: Sale,
    amount: Decimal,
    received_at: datetime,
    source: str,
    source_id: str,
    payer_name: str = "",
    received_into: str = MPESA_CASH,
) -> SalePaymentOutcome:
    """Apply money to a pending sale, up to its balance. Must run inside the caller's transaction,
    which also books whatever the sale could not take."""
    sale = Sale.objects.select_for_update().get(pk=sale.pk)
    if sale.status != SaleStatus.PENDING:
        return SalePaymentOutcome(
            None, amount, f"Sale {sale.reference} is {sale.get_status_display().lower()}."
        )
    applied = min(amount, sale.balance_due)
    entry = journal_entry_post(
        memo=f"Sale {sale.reference} paid by {source} {source_id}",
        lines=[
            JournalLineInput(account=received_into, debit=applied),
            JournalLineInput(account=SALES_REVENUE, credit=applied),
        ],
        cause_kind=CauseKind.SALE,
        cause_id=sale.reference,
        posted_at=received_at,
    )
    payment = SalePayment.objects.create(
        sale=sale,
        source=source,
        source_id=source_id,
        amount=applied,
        payer_name=payer_name[:200],
        received_at=received_at,
        journal_entry=entry,
    )
    sale.amount_paid += applied
    if sale.amount_paid == sale.total:
        sale.status, sale.paid_at = SaleStatus.PAID, timezone.now()
    sale.save(update_fields=["amount_paid", "status", "paid_at"])
    _announce(sale)
    excess = amount - applied
    reason = f"KES {excess} more than sale {sale.reference} needed." if excess else ""
    return SalePaymentOutcome(payment, excess, reason)


def sale_payment_refund(*, payment: SalePayment, reason: str, by: User | None) -> Sale:
    """The money went back to the payer: the revenue it booked is reversed (crediting the account it
    was received into) and the sale takes it off what was paid. A sale left with nothing paid is
    cancelled (the goods came back); one still part paid is pending again, with its balance."""
    reason = reason.strip()
    if not reason:
        raise SaleValidationError({"reason": "Say why the sale's payment is refunded."})
    with transaction.atomic():
        sale = Sale.objects.select_for_update().get(pk=payment.sale_id)
        payment = SalePayment.objects.select_for_update().get(pk=payment.pk)
        if payment.refunded_at is not None:
            raise SaleError(f"The payment {payment.source_id} to sale {sale.reference} was already refunded.")
        journal_entry_reverse(
            entry=payment.journal_entry, reason=f"Refunded: {reason}", by=by,
            memo=f"Sale {sale.reference}: {payment.source_id} refunded"[:255],
        )  # fmt: skip
        now = timezone.now()
        payment.refunded_at, payment.refund_reason = now, reason
        payment.save(update_fields=["refunded_at", "refund_reason"])
        sale.amount_paid -= payment.amount
        sale.paid_at = None
        if sale.amount_paid == 0:
            sale.status, sale.cancelled_at = SaleStatus.CANCELLED, now
        else:
            sale.status = SaleStatus.PENDING
        sale.save(update_fields=["amount_paid", "status", "paid_at", "cancelled_at"])
        _announce(sale)
        audit_record(
            action="sale.refund", subject=f"sale {sale.reference}", by=by, reason=reason,
            summary=f"KES {payment.amount} ({payment.source_id}) refunded; the sale is now "
            f"{sale.get_status_display()}.",
        )  # fmt: skip
    return sale


def _announce(sale: Sale) -> None:
    event_publish(
        kind="sale",
        payload={
            "sale": sale.reference,
            "status": sale.status,
            "total": sale.total,
            "balance_due": sale.balance_due,
        },
    )


def _validated_lines(lines: Sequence[SaleLineInput]) -> list[SaleLine]:
    errors: dict[str, str] = {}
    prepared = []
    if not lines:
        errors["items"] = "A sale needs at least one item."
    for number, line in enumerate(lines, start=1):
        key = f"items[{number}]"
        if line.product is not None and not line.product.is_active:
            errors[key] = f"{line.product} is no longer sold."
            continue
        description = line.product.name if line.product else " ".join(line.description.split())
        try:
            price = (
                to_kes(line.unit_price)
                if line.unit_price is not None
                else (line.product.price if line.product else None)
            )
        except InvalidAmountError as exc:
            errors[key] = str(exc)
            continue
        if not description or price is None:
            errors[key] = "Pick a product, or describe the item and give its price."
        elif not isinstance(line.quantity, int) or line.quantity < 1 or line.quantity > 100_000:
            errors[key] = "Quantity must be a whole number from 1."
        elif price <= 0:
            errors[key] = "The price must be more than zero."
        else:
            prepared.append(
                SaleLine(
                    product=line.product,
                    description=description[:120],
                    quantity=line.quantity,
                    unit_price=price,
                    line_total=price * line.quantity,
                )
            )
    total = sum((line.line_total for line in prepared), ZERO)
    if not errors and total > MAX_AMOUNT:
        errors["items"] = "The sale total is larger than a sale can hold."
    elif not errors and total != total.to_integral_value():
        errors["items"] = f"The total KSh {total} has cents; M-Pesa moves whole shillings only."
    if errors:
        raise SaleValidationError(errors)
    return prepared
