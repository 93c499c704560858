"""A receipt booked to the wrong customer or invoice is moved, keeping every invariant."""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from customers.selectors import customer_position
from invoices.models import InvoiceStatus, Payment
from ledger.selectors import account_balance, ledger_verify
from mpesa.exceptions import ReceiptAssignmentError
from mpesa.models import MpesaReceipt
from mpesa.services.c2b import receipt_reallocate
from tests.customers.factories import CustomerFactory
from tests.invoices.factories import InvoiceFactory
from tests.mpesa import payloads

pytestmark = pytest.mark.django_db

D = Decimal


def confirm(trans_id, amount, account):
    payload = payloads.c2b(trans_id=trans_id, amount=amount, account=account)
    Client().post(reverse("c2b-confirmation", args=["test-webhook-token"]), data=payloads.body(payload),
                  content_type="application/json")  # fmt: skip
    return MpesaReceipt.objects.get(trans_id=trans_id)


def test_a_payment_to_the_wrong_invoice_is_moved_and_both_invoices_follow():
    wrong, right = InvoiceFactory(amount=D("1000")), InvoiceFactory(amount=D("1000"))
    receipt = confirm("TKREALLOC1", "1200", wrong.number)  # 1,000 paid + 200 credit for the wrong customer
    moved = receipt_reallocate(
        receipt=receipt, reference=right.number, reason="Parent typed a sibling's invoice", by=None
    )
    wrong.refresh_from_db()
    right.refresh_from_db()
    assert (wrong.status, wrong.amount_paid) == (InvoiceStatus.UNPAID, D("0.00"))
    assert (right.status, moved.customer_id) == (InvoiceStatus.PAID, right.customer_id)
    assert customer_position(wrong.customer_id).credit == D("0.00")
    assert customer_position(right.customer_id).credit == D("200.00")
    old = Payment.objects.get(reallocated_at__isnull=False)
    assert old.reallocation_reason == "Parent typed a sibling's invoice" and old.source_id.startswith(
        "TKREALLOC1~"
    )
    assert moved.payment.source_id == "TKREALLOC1"
    assert account_balance("1010") == D("1200.00")  # the cash itself never moved
    assert ledger_verify() == {"is_valid": True, "errors": []}


def test_a_payment_moves_to_a_customer_and_can_be_moved_again():
    first, second = CustomerFactory(), CustomerFactory()
    InvoiceFactory(customer=first, amount=D("500"))
    receipt = confirm("TKREALLOC2", "500", first.code)
    receipt = receipt_reallocate(receipt=receipt, reference=second.code, reason="wrong account", by=None)
    assert customer_position(second.pk).credit == D("500.00")
    assert customer_position(first.pk).owed == D("500.00")
    receipt_reallocate(receipt=receipt, reference=first.code, reason="it was right after all", by=None)
    assert customer_position(first.pk).owed == D("0.00") and customer_position(second.pk).credit == D("0.00")
    assert ledger_verify()["is_valid"]


def test_moving_credit_that_has_been_used_is_refused_and_nothing_changes():
    customer = CustomerFactory()
    receipt = confirm("TKREALLOC3", "700", customer.code)  # all credit
    InvoiceFactory(customer=customer, amount=D("700"))  # the credit pays this at once
    with pytest.raises(ReceiptAssignmentError, match="has been used"):
        receipt_reallocate(receipt=receipt, reference=CustomerFactory().code, reason="x", by=None)
    assert not Payment.objects.filter(reallocated_at__isnull=False).exists()
    assert ledger_verify()["is_valid"]


def test_reallocation_from_the_admin(admin_client):
    wrong, right = InvoiceFactory(amount=D("300")), InvoiceFactory(amount=D("300"))
    receipt = confirm("TKREALLOC4", "300", wrong.number)
    url = reverse("admin:mpesa_mpesareceipt_changelist")
    action = {"action": "reallocate", "_selected_action": [receipt.pk]}
    assert "it really belongs to" in admin_client.post(url, action).content.decode()
    admin_client.post(url, {**action, "confirm": "yes", "reference": right.number, "reason": "typo"})
    right.refresh_from_db()
    assert right.status == InvoiceStatus.PAID
