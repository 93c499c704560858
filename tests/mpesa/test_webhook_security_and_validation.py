from decimal import Decimal

import pytest
from django.test import Client

from mpesa.models import MpesaReceipt, WebhookLog, WebhookStatus
from tests.customers.factories import CustomerFactory
from tests.invoices.factories import InvoiceFactory
from tests.mpesa import payloads

pytestmark = pytest.mark.django_db

BASE = "/api/webhooks/c2b/test-webhook-token"
SAFARICOM_IP = "196.201.214.200"


def post(path, payload, **extra):
    return Client().post(path, data=payloads.body(payload), content_type="application/json", **extra)


def test_a_wrong_token_is_a_404_and_writes_nothing():
    response = post("/api/webhooks/c2b/guess/confirmation", payloads.c2b(trans_id="TKTOKEN001"))
    assert response.status_code == 404
    assert not WebhookLog.objects.exists()


def test_an_unset_token_switches_the_webhooks_off(settings):
    settings.MPESA_WEBHOOK_TOKEN = ""
    assert post("/api/webhooks/c2b//confirmation", payloads.c2b(trans_id="TKTOKEN002")).status_code == 404


def test_a_caller_outside_the_allow_list_is_refused_and_logged(settings):
    settings.MPESA_ALLOWED_IPS = [SAFARICOM_IP]
    response = post(f"{BASE}/confirmation", payloads.c2b(trans_id="TKIP000001", account="x"))
    assert response.status_code == 403
    log = WebhookLog.objects.get()
    assert log.status == WebhookStatus.REFUSED and log.source_ip == "127.0.0.1"
    assert not MpesaReceipt.objects.exists()


def test_a_spoofed_forwarded_for_is_not_believed_from_an_untrusted_peer(settings):
    settings.MPESA_ALLOWED_IPS = [SAFARICOM_IP]
    settings.MPESA_TRUSTED_PROXIES = []
    response = post(
        f"{BASE}/confirmation", payloads.c2b(trans_id="TKIP000002"), HTTP_X_FORWARDED_FOR=SAFARICOM_IP
    )
    assert response.status_code == 403


def test_forwarded_for_is_believed_from_our_own_proxy(settings):
    settings.MPESA_ALLOWED_IPS = ["196.201.214.0/24"]
    settings.MPESA_TRUSTED_PROXIES = ["127.0.0.1"]
    customer = CustomerFactory()
    response = post(
        f"{BASE}/confirmation",
        payloads.c2b(trans_id="TKIP000003", account=customer.code),
        # Whatever the caller claimed first, then Safaricom's address as our own proxy saw it.
        HTTP_X_FORWARDED_FOR=f"10.0.0.9, {SAFARICOM_IP}",
    )
    assert response.status_code == 200
    assert WebhookLog.objects.get().source_ip == SAFARICOM_IP


def test_an_oversized_body_is_refused(settings):
    settings.MPESA_WEBHOOK_MAX_BODY = 2000
    payload = payloads.c2b(trans_id="TKBIG00001", first_name="X" * 5000)
    assert post(f"{BASE}/confirmation", payload).status_code == 413
    assert not WebhookLog.objects.exists()


def test_only_the_webhooks_skip_csrf():
    client = Client(enforce_csrf_checks=True)
    customer = CustomerFactory()
    webhook = client.post(
        f"{BASE}/confirmation",
        data=payloads.body(payloads.c2b(trans_id="TKCSRF0001", account=customer.code)),
        content_type="application/json",
    )
    assert webhook.status_code == 200
    assert client.post("/admin/login/", {"username": "x", "password": "y"}).status_code == 403


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({}, "0"),
        ({"account": "nobody"}, "C2B00012"),
        ({"amount": "10.50"}, "C2B00013"),
        ({"amount": "0.00"}, "C2B00016"),
        ({"amount": "250001"}, "C2B00013"),
        ({"shortcode": "123456"}, "C2B00015"),
    ],
)
def test_validation_answers_with_the_matching_code(change, code):
    invoice = InvoiceFactory(amount=Decimal("1000.00"))
    payload = payloads.c2b(
        trans_id=payloads.trans_id(), **{"account": invoice.number, "amount": "1000", **change}
    )
    response = post(f"{BASE}/validation", payload)
    assert response.status_code == 200
    assert response.json()["ResultCode"] == code
    assert WebhookLog.objects.get().detail.startswith(f"Answered {code}")
    assert not MpesaReceipt.objects.exists()  # validation never books


def test_validation_of_garbage_is_rejected_as_other_error():
    response = Client().post(f"{BASE}/validation", data=b"{oops", content_type="application/json")
    assert response.json() == {"ResultCode": "C2B00016", "ResultDesc": "Other Error"}


def test_unknown_accounts_can_be_let_through_validation(settings):
    settings.MPESA_REJECT_UNKNOWN_ACCOUNTS = False
    response = post(f"{BASE}/validation", payloads.c2b(trans_id="TKVALID001", account="nobody", amount="100"))
    assert response.json() == {"ResultCode": "0", "ResultDesc": "Accepted"}


def test_validation_refuses_a_customer_over_the_daily_limit(settings):
    settings.MPESA_DAILY_CUSTOMER_LIMIT = "1500.00"
    customer = CustomerFactory()
    post(f"{BASE}/confirmation", payloads.c2b(trans_id="TKVALID002", account=customer.code, amount="1000"))
    response = post(
        f"{BASE}/validation", payloads.c2b(trans_id="TKVALID003", account=customer.code, amount="600")
    )
    assert response.json()["ResultCode"] == "C2B00013"
