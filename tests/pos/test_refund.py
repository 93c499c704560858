"""A till sale's payment refunded: revenue reversed; the sale pending again, or cancelled when nothing
is left paid."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from ledger.chart import MPESA_CASH, SALES_REVENUE
from ledger.selectors import account_balance, ledger_verify
from pos.exceptions import SaleError
from pos.models import SaleStatus
from pos.services import sale_payment_apply, sale_payment_refund
from tests.pos.factories import SaleFactory

pytestmark = pytest.mark.django_db


def pay(sale, amount, receipt):
    with transaction.atomic():
        return sale_payment_apply(
            sale=sale, amount=Decimal(amount), received_at=timezone.now(), source="MPESA", source_id=receipt
        ).payment


def test_refunding_one_of_two_payments_leaves_the_sale_pending_with_its_balance():
    sale = SaleFactory(total=Decimal("500.00"))
    first, second = pay(sale, "300", "RCPTA00001"), pay(sale, "200", "RCPTA00002")
    sale.refresh_from_db()
    assert sale.status == SaleStatus.PAID

    sale = sale_payment_refund(payment=second, reason="Charged twice", by=None)
    assert (sale.status, sale.amount_paid, sale.balance_due) == (
        SaleStatus.PENDING,
        Decimal("300.00"),
        Decimal("200.00"),
    )
    assert account_balance(SALES_REVENUE) == Decimal("-300.00") or account_balance(SALES_REVENUE) == Decimal(
        "300.00"
    )
    assert account_balance(MPESA_CASH) == Decimal("300.00")
    with pytest.raises(SaleError, match="already refunded"):
        sale_payment_refund(payment=second, reason="again", by=None)

    sale = sale_payment_refund(payment=first, reason="Goods returned", by=None)
    assert (sale.status, sale.amount_paid) == (SaleStatus.CANCELLED, Decimal("0.00"))
    assert account_balance(MPESA_CASH) == Decimal("0.00")
    assert ledger_verify()["is_valid"]
