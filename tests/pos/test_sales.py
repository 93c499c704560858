from decimal import Decimal

import pytest
from django.test import Client

from ledger.chart import MPESA_CASH, SALES_REVENUE, UNALLOCATED_RECEIPTS
from ledger.selectors import account_balance, ledger_verify
from mpesa.models import MpesaReceipt, ReceiptStatus, UnallocatedReason
from pos.exceptions import SaleError, SaleValidationError
from pos.models import Sale, SaleStatus
from pos.selectors import sale_reference_normalize
from pos.services import SaleLineInput, sale_cancel, sale_create
from tests.factories import UserFactory
from tests.mpesa import payloads
from tests.pos.factories import ProductFactory, SaleFactory

pytestmark = pytest.mark.django_db

BASE = "/api/webhooks/c2b/test-webhook-token"
D = Decimal


def pay(account, amount, trans_id=None):
    payload = payloads.c2b(trans_id=trans_id or payloads.trans_id(), amount=amount, account=account)
    return Client().post(f"{BASE}/confirmation", data=payloads.body(payload), content_type="application/json")


def validate(account, amount):
    payload = payloads.c2b(trans_id=payloads.trans_id(), amount=amount, account=account)
    response = Client().post(
        f"{BASE}/validation", data=payloads.body(payload), content_type="application/json"
    )
    return response.json()["ResultCode"]


def test_a_sale_of_products_and_a_free_item_gets_a_number_that_fits_an_stk_reference():
    flour, sugar = ProductFactory(price=D("230.00")), ProductFactory(name="Sugar 1kg", price=D("199.00"))
    sale = sale_create(
        lines=[
            SaleLineInput(quantity=2, product=flour),
            SaleLineInput(quantity=1, product=sugar),
            SaleLineInput(quantity=3, description="Bread", unit_price="65"),
        ],
        cashier=UserFactory(),
    )
    assert sale.reference.startswith("POS-") and len(sale.reference) <= 12
    assert sale.total == D("854.00") and sale.status == SaleStatus.PENDING
    assert [line.description for line in sale.lines.all()] == [flour.name, "Sugar 1kg", "Bread"]
    assert sale_reference_normalize(f" pos {int(sale.reference[4:])} ") == sale.reference


def test_bad_sales_are_refused_item_by_item_and_nothing_written():
    retired = ProductFactory(is_active=False)
    with pytest.raises(SaleValidationError) as error:
        sale_create(
            lines=[
                SaleLineInput(quantity=1, product=retired),
                SaleLineInput(quantity=0, description="Eggs", unit_price="15"),
                SaleLineInput(quantity=1, description="", unit_price="15"),
                SaleLineInput(quantity=1, description="Milk", unit_price="10.001"),
            ],
            cashier=UserFactory(),
        )
    assert set(error.value.errors) == {"items[1]", "items[2]", "items[3]", "items[4]"}
    assert not Sale.objects.exists()


def test_two_payments_complete_a_sale_and_book_sales_revenue():
    sale = SaleFactory(total=D("1000.00"))
    pay(sale.reference.lower(), "400")
    sale.refresh_from_db()
    assert (sale.status, sale.balance_due) == (SaleStatus.PENDING, D("600.00"))
    pay(sale.reference, "600")
    sale.refresh_from_db()
    assert sale.status == SaleStatus.PAID and sale.paid_at is not None
    assert [r.status for r in MpesaReceipt.objects.all()] == [ReceiptStatus.SALE, ReceiptStatus.SALE]
    assert account_balance(MPESA_CASH) == D("1000.00") and account_balance(SALES_REVENUE) == D("1000.00")
    assert ledger_verify() == {"is_valid": True, "errors": []}


def test_an_overpayment_pays_the_sale_and_holds_the_rest_in_suspense():
    sale = SaleFactory(total=D("500.00"))
    pay(sale.reference, "700", trans_id="TKOVERPAY1")
    sale.refresh_from_db()
    receipt = MpesaReceipt.objects.get()
    assert sale.status == SaleStatus.PAID
    assert (receipt.status, receipt.unallocated_amount, receipt.unallocated_reason) == (
        ReceiptStatus.SALE,
        D("200.00"),
        UnallocatedReason.SALE_OVERPAID,
    )
    assert account_balance(UNALLOCATED_RECEIPTS) == D("200.00") and account_balance(SALES_REVENUE) == D(
        "500.00"
    )
    assert ledger_verify()["is_valid"]


def test_a_payment_to_a_cancelled_sale_is_held_in_suspense():
    sale = SaleFactory(total=D("300.00"))
    sale_cancel(sale=sale, by=sale.cashier)
    pay(sale.reference, "300")
    receipt = MpesaReceipt.objects.get()
    assert (receipt.status, receipt.unallocated_reason) == (
        ReceiptStatus.UNALLOCATED,
        UnallocatedReason.SALE_CLOSED,
    )
    assert account_balance(SALES_REVENUE) == D("0.00")
    assert ledger_verify()["is_valid"]


def test_only_a_pending_unpaid_sale_can_be_cancelled():
    sale = SaleFactory(total=D("300.00"))
    pay(sale.reference, "100")
    with pytest.raises(SaleError, match=r"has KES 100\.00 paid"):
        sale_cancel(sale=sale, by=sale.cashier)
    pay(sale.reference, "200")
    with pytest.raises(SaleError, match="is paid"):
        sale_cancel(sale=sale, by=sale.cashier)


def test_validation_accepts_a_pending_sale_and_refuses_closed_or_overpaid_ones():
    sale = SaleFactory(total=D("300.00"))
    assert validate(sale.reference, "300") == "0"
    assert validate(sale.reference, "301") == "C2B00013"
    sale_cancel(sale=sale, by=sale.cashier)
    assert validate(sale.reference, "300") == "C2B00012"


def test_a_sale_with_cents_is_refused_since_m_pesa_moves_whole_shillings():
    with pytest.raises(SaleValidationError, match="whole shillings"):
        sale_create(
            lines=[SaleLineInput(quantity=1, description="Sweets", unit_price="99.50")], cashier=UserFactory()
        )
    assert not Sale.objects.exists()
