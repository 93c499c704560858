from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from customers.selectors import customer_position
from ledger.chart import UNALLOCATED_RECEIPTS
from ledger.selectors import account_balance, ledger_verify
from mpesa.models import MpesaReceipt, ReceiptConflict, ReceiptStatus, WebhookLog, WebhookStatus
from tests.customers.factories import CustomerFactory
from tests.invoices.factories import InvoiceFactory
from tests.mpesa import payloads

pytestmark = pytest.mark.django_db

CONFIRM = "/api/webhooks/c2b/test-webhook-token/confirmation"
QUEUE = reverse("admin:mpesa_unallocatedreceipt_changelist")


def confirm(payload):
    return Client().post(CONFIRM, data=payloads.body(payload), content_type="application/json")


def test_receipts_are_listed_read_only_with_their_allocations(admin_client):
    invoice = InvoiceFactory(amount=Decimal("500.00"))
    confirm(payloads.c2b(trans_id="TKADMIN001", amount="700", account=invoice.number))
    receipt = MpesaReceipt.objects.get()
    listing = admin_client.get(reverse("admin:mpesa_mpesareceipt_changelist")).content.decode()
    assert "TKADMIN001" in listing and "Partly allocated" in listing
    detail = admin_client.get(reverse("admin:mpesa_mpesareceipt_change", args=[receipt.pk])).content.decode()
    assert f"{invoice.number}: KES 500.00" in detail and "customer credit: KES 200.00" in detail
    assert (
        admin_client.post(reverse("admin:mpesa_mpesareceipt_change", args=[receipt.pk]), {}).status_code
        == 403
    )


def test_a_clerk_assigns_a_suspense_receipt_to_an_invoice(admin_client):
    invoice = InvoiceFactory(amount=Decimal("1000.00"))
    confirm(payloads.c2b(trans_id="TKQUEUE001", amount="1000", account="school fees"))
    receipt = MpesaReceipt.objects.get()
    assert "TKQUEUE001" in admin_client.get(QUEUE).content.decode()
    action = {"action": "assign", "_selected_action": [receipt.pk]}
    assert "The invoice number or customer code" in admin_client.post(QUEUE, action).content.decode()
    done = admin_client.post(QUEUE, {**action, "confirm": "yes", "reference": invoice.number}, follow=True)
    assert "assigned: Allocated to invoices" in done.content.decode()
    receipt.refresh_from_db()
    assert receipt.status == ReceiptStatus.ALLOCATED and receipt.assigned_by.username == "admin"
    assert account_balance(UNALLOCATED_RECEIPTS) == Decimal("0.00")
    assert customer_position(invoice.customer_id).owed == Decimal("0.00")
    assert "TKQUEUE001" not in admin_client.get(QUEUE).content.decode()
    assert ledger_verify()["is_valid"]


def test_assigning_to_nothing_is_refused_with_a_message(admin_client):
    confirm(payloads.c2b(trans_id="TKQUEUE002", amount="10", account="??"))
    receipt = MpesaReceipt.objects.get()
    done = admin_client.post(
        QUEUE,
        {"action": "assign", "_selected_action": [receipt.pk], "confirm": "yes", "reference": "CUST-99999"},
        follow=True,
    )
    assert "No invoice, customer or sale matches" in done.content.decode()
    receipt.refresh_from_db()
    assert receipt.status == ReceiptStatus.UNALLOCATED


def test_conflicts_are_listed_and_marked_reviewed(admin_client):
    customer = CustomerFactory()
    confirm(payloads.c2b(trans_id="TKCONF0001", amount="10", account=customer.code))
    confirm(payloads.c2b(trans_id="TKCONF0001", amount="99", account=customer.code))
    url = reverse("admin:mpesa_receiptconflict_changelist")
    assert "amount 99.00" in admin_client.get(url).content.decode()
    admin_client.post(
        url, {"action": "mark_reviewed", "_selected_action": [ReceiptConflict.objects.get().pk]}
    )
    assert ReceiptConflict.objects.get().reviewed_by.username == "admin"


def test_webhook_log_is_read_only_and_reprocesses_failed_confirmations(admin_client):
    customer = CustomerFactory()
    log = WebhookLog.objects.create(
        kind="c2b_confirmation",
        body=payloads.body(payloads.c2b(trans_id="TKLOG00001", amount="50", account=customer.code)).decode(),
        status=WebhookStatus.FAILED,
        detail="OperationalError: the database went away",
    )
    url = reverse("admin:mpesa_webhooklog_changelist")
    assert "the database went away" in admin_client.get(url).content.decode()
    admin_client.post(url, {"action": "reprocess", "_selected_action": [log.pk]})
    log.refresh_from_db()
    assert log.status == WebhookStatus.PROCESSED
    assert MpesaReceipt.objects.get().customer == customer


def test_a_refused_confirmation_can_be_booked_once_checked(admin_client, settings):
    settings.MPESA_ALLOWED_IPS = ["196.201.214.200"]
    customer = CustomerFactory()
    assert confirm(payloads.c2b(trans_id="TKREFUSED1", amount="40", account=customer.code)).status_code == 403
    log = WebhookLog.objects.get()
    url = reverse("admin:mpesa_webhooklog_changelist")
    admin_client.post(url, {"action": "book_refused", "_selected_action": [log.pk]})
    log.refresh_from_db()
    assert log.status == WebhookStatus.PROCESSED
    assert MpesaReceipt.objects.get().customer == customer
