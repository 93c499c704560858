import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.selectors import customer_position
from invoices.models import InvoiceStatus, Payment
from ledger.chart import MPESA_CASH, UNALLOCATED_RECEIPTS
from ledger.models import JournalEntry
from ledger.selectors import account_balance, ledger_verify
from mpesa.models import (
    MpesaReceipt,
    ReceiptConflict,
    ReceiptStatus,
    UnallocatedReason,
    WebhookLog,
    WebhookStatus,
)
from tests.customers.factories import CustomerFactory
from tests.invoices.factories import InvoiceFactory
from tests.ledger.factories import PostedEntryFactory
from tests.mpesa import payloads

pytestmark = pytest.mark.django_db

CONFIRM = "/api/webhooks/c2b/test-webhook-token/confirmation"
SUCCESS = {"ResultCode": 0, "ResultDesc": "Success"}
D = Decimal


def confirm(payload, client=None, **extra):
    client = client or Client()
    return client.post(CONFIRM, data=payloads.body(payload), content_type="application/json", **extra)


def test_a_payment_to_an_invoice_is_booked_and_acknowledged():
    invoice = InvoiceFactory(amount=D("2500.00"))
    tid = payloads.trans_id()
    response = confirm(payloads.c2b(trans_id=tid, amount="2500.00", account=invoice.number.lower()))
    assert response.status_code == 200 and response.json() == SUCCESS
    receipt = MpesaReceipt.objects.get(trans_id=tid)
    assert receipt.status == ReceiptStatus.ALLOCATED and receipt.customer_id == invoice.customer_id
    assert receipt.payment.allocations.get().invoice == invoice
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert account_balance(MPESA_CASH) == D("2500.00")
    log = WebhookLog.objects.get()
    assert (log.status, log.trans_id, log.receipt) == (WebhookStatus.PROCESSED, tid, receipt)
    assert log.source_ip == "127.0.0.1" and '"TransID"' in log.body
    assert ledger_verify()["is_valid"]


def test_a_confirmation_locks_its_customer_once_and_takes_both_its_locks_in_one_round_trip():
    invoice = InvoiceFactory(amount=D("700.00"))
    with CaptureQueriesContext(connection) as statements:
        confirm(payloads.c2b(trans_id="TKLOCKS001", amount="700", account=invoice.number))
    sent = [q["sql"] for q in statements.captured_queries]
    assert (
        sum(bool(re.search(r"FROM customers_customer WHERE id = \S+ +FOR UPDATE", sql)) for sql in sent) == 1
    )
    [locks] = [sql for sql in sent if "pg_advisory_xact_lock" in sql]
    assert "FOR UPDATE" in locks  # the log row's lock and the receipt number's, together
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and ledger_verify()["is_valid"]


def test_by_customer_code_with_an_overpayment_the_receipt_says_partly_allocated():
    customer = CustomerFactory()
    InvoiceFactory(customer=customer, amount=D("600.00"))
    confirm(payloads.c2b(trans_id="TKPART0001", amount="1000", account=customer.code))
    receipt = MpesaReceipt.objects.get(trans_id="TKPART0001")
    assert receipt.status == ReceiptStatus.PARTLY_ALLOCATED
    assert customer_position(customer.pk).credit == D("400.00")


def test_a_repeated_trans_id_books_nothing_more_and_still_succeeds():
    invoice = InvoiceFactory(amount=D("1000.00"))
    payload = payloads.c2b(trans_id="TKREPEAT01", amount="400", account=invoice.number)
    assert confirm(payload).json() == SUCCESS
    assert confirm(payload).json() == SUCCESS
    assert MpesaReceipt.objects.count() == 1 and Payment.objects.count() == 1
    assert JournalEntry.objects.filter(cause_kind="receipt").count() == 1
    assert list(WebhookLog.objects.order_by("pk").values_list("status", flat=True)) == [
        WebhookStatus.PROCESSED,
        WebhookStatus.DUPLICATE,
    ]


def test_a_repeated_trans_id_with_different_details_is_flagged_not_booked():
    invoice = InvoiceFactory(amount=D("1000.00"))
    confirm(payloads.c2b(trans_id="TKCONFLICT", amount="400", account=invoice.number))
    response = confirm(
        payloads.c2b(trans_id="TKCONFLICT", amount="4000", account="CUST-9999", shortcode="600001")
    )
    assert response.json() == SUCCESS
    conflict = ReceiptConflict.objects.get()
    assert "amount 4000.00 (first delivery 400.00)" in conflict.differences
    assert "account 'CUST-9999'" in conflict.differences and "shortcode '600001'" in conflict.differences
    assert WebhookLog.objects.filter(status=WebhookStatus.CONFLICT).count() == 1
    assert account_balance(MPESA_CASH) == D("400.00")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json at all", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (payloads.body({"TransAmount": "10"}), "no TransID"),
        (payloads.body(payloads.c2b(trans_id="TK1", amount="0")), "must be positive"),
        (payloads.body(payloads.c2b(trans_id="TK1", amount="-5")), "must be positive"),
        (payloads.body(payloads.c2b(trans_id="TK1", amount="ten")), "not an amount"),
        (payloads.body(payloads.c2b(trans_id="TK'; DROP", amount="10")), "not an M-Pesa receipt"),
    ],
)
def test_a_body_that_is_not_a_payment_is_a_400_and_logged_rejected(payload, reason):
    response = Client().post(CONFIRM, data=payload, content_type="application/json")
    assert response.status_code == 400
    log = WebhookLog.objects.get()
    assert log.status == WebhookStatus.REJECTED and reason in log.detail
    assert not MpesaReceipt.objects.exists() and not JournalEntry.objects.exists()


def test_numbers_where_strings_were_expected_are_read_as_decimals():
    invoice = InvoiceFactory(amount=D("1000.00"))
    payload = payloads.c2b(trans_id="TKNUMBERS1", account=invoice.number)
    text = payloads.body(payload).decode()
    text = text.replace('"TransAmount": "1000.00"', '"TransAmount": 1000.10').replace('"600000"', "600000")
    response = Client().post(CONFIRM, data=text, content_type="application/json")
    assert response.json() == SUCCESS
    receipt = MpesaReceipt.objects.get()
    assert receipt.amount == D("1000.10") and receipt.business_short_code == "600000"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"account": "SHULE FEES"}, UnallocatedReason.UNKNOWN_REFERENCE),
        ({"amount": "250001"}, UnallocatedReason.OVER_TRANSACTION_LIMIT),
        ({"shortcode": "999999"}, UnallocatedReason.WRONG_SHORTCODE),
    ],
)
def test_what_cannot_be_routed_is_still_booked_to_suspense_with_a_reason(change, reason):
    customer = CustomerFactory()
    payload = payloads.c2b(trans_id=payloads.trans_id(), **{"account": customer.code, **change})
    assert confirm(payload).json() == SUCCESS
    receipt = MpesaReceipt.objects.get()
    assert receipt.status == ReceiptStatus.UNALLOCATED and receipt.unallocated_reason == reason
    assert receipt.unallocated_detail
    amount = D(change.get("amount", "1000.00"))
    assert account_balance(UNALLOCATED_RECEIPTS) == amount and account_balance(MPESA_CASH) == amount
    assert ledger_verify()["is_valid"]


def test_over_the_customers_daily_limit_goes_to_suspense(settings):
    settings.MPESA_DAILY_CUSTOMER_LIMIT = "1500.00"
    customer = CustomerFactory()
    confirm(payloads.c2b(trans_id="TKDAY00001", amount="1000", account=customer.code))
    confirm(payloads.c2b(trans_id="TKDAY00002", amount="600", account=customer.code))
    yesterday = timezone.now() - timedelta(days=1)
    confirm(payloads.c2b(trans_id="TKDAY00003", amount="1000", account=customer.code, when=yesterday))
    statuses = dict(MpesaReceipt.objects.values_list("trans_id", "unallocated_reason"))
    assert statuses == {"TKDAY00001": "", "TKDAY00002": UnallocatedReason.OVER_DAILY_LIMIT, "TKDAY00003": ""}
    assert MpesaReceipt.objects.get(trans_id="TKDAY00002").suggested_customer == customer


def test_a_hashed_msisdn_suggests_the_customer_whose_phone_it_is():
    customer = CustomerFactory(phone="0712345678")
    payload = payloads.c2b(
        trans_id="TKHASH0001", account="unknown", msisdn=payloads.hashed_msisdn("254712345678")
    )
    confirm(payload)
    receipt = MpesaReceipt.objects.get()
    assert receipt.suggested_customer == customer
    assert customer.name in receipt.unallocated_detail


def test_ledger_verify_checks_the_suspense_account_against_the_unallocated_receipts():
    confirm(payloads.c2b(trans_id="TKVERIFY01", amount="75", account="who knows"))
    assert ledger_verify()["is_valid"]
    PostedEntryFactory(amount=D("5.00"), debit_account=MPESA_CASH, credit_account=UNALLOCATED_RECEIPTS)
    assert ledger_verify()["errors"] == [
        "Account 2200 holds 80.00 but the unallocated M-Pesa receipts add up to 75.00."
    ]
