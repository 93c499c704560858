"""M-Pesa Express end to end: our app on pytest-django's live server, the fake Daraja calling back."""

import json
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from customers.services import customer_create
from ledger.selectors import ledger_verify
from mpesa.daraja import DarajaClient
from mpesa.fake_daraja import SANDBOX_PASSKEY, FakeDaraja
from mpesa.models import (
    MpesaReceipt,
    ReceiptConflict,
    ReceiptSource,
    StkPush,
    StkStatus,
    WebhookLog,
    WebhookStatus,
)
from mpesa.services.c2b import receipt_assign
from mpesa.services.stk import (
    PROMPT_OPEN_FOR,
    UNKNOWN_PROMPT_ATTEMPTS,
    StkError,
    sending_abandoned_after,
    stk_push_for_sale,
    stk_settle_unanswered,
    stk_words,
)
from pos.models import Sale, SaleStatus
from pos.services import sale_cancel
from tests.customers.factories import CustomerFactory
from tests.factories import UserFactory
from tests.mpesa import payloads
from tests.pos.factories import SaleFactory
from tests.threads import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def daraja(settings, live_server):
    fake = FakeDaraja(callback_delay=0.05).start()
    settings.MPESA_API_BASE = fake.url
    settings.MPESA_CONSUMER_KEY, settings.MPESA_CONSUMER_SECRET = "fake-key", "fake-secret"
    settings.MPESA_PASSKEY = SANDBOX_PASSKEY
    settings.MPESA_CALLBACK_BASE_URL = live_server.url
    call_command("mpesa_register_urls")
    yield fake
    fake.stop()


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def callback_delivered(daraja, kind):
    """The fake's record of the first callback of `kind` it delivered. It records one only after our
    answer has reached it, which can be after the callback's effects are already visible here."""

    def first():
        return next((callback for callback in daraja.callbacks if callback.kind == kind), None)

    assert wait_for(lambda: first() is not None), f"the fake Daraja delivered no {kind} callback"
    return first()


def cashier_signed_in():
    """A cashier, and a client signed in as them (the till's waiting screen)."""
    cashier = UserFactory()
    cashier.groups.add(Group.objects.get(name="Cashier"))
    client = Client()
    client.force_login(cashier)
    return cashier, client


def settled(push):
    return wait_for(lambda: StkPush.objects.get(pk=push.pk).status != StkStatus.REQUESTED)


@pytest.mark.parametrize("c2b_first", [False, True])
def test_a_paid_prompt_pays_the_sale_once_whichever_channel_reports_first(daraja, c2b_first):
    daraja.state.c2b_first = c2b_first
    sale = SaleFactory(total=Decimal("460.00"))
    push = stk_push_for_sale(sale=sale, phone="0712 345 670", by=None)
    assert push.phone == "254712345670" and push.amount == Decimal("460.00")
    assert settled(push)
    assert wait_for(lambda: len(daraja.callbacks) == 2)
    push.refresh_from_db()
    sale.refresh_from_db()
    assert push.status == StkStatus.PAID and sale.status == SaleStatus.PAID
    receipt = MpesaReceipt.objects.get()
    assert receipt.trans_id == push.mpesa_receipt_number
    assert receipt.source == (ReceiptSource.C2B if c2b_first else ReceiptSource.STK)
    statuses = sorted(WebhookLog.objects.values_list("kind", "status"))
    assert (
        "c2b_confirmation",
        WebhookStatus.DUPLICATE if not c2b_first else WebhookStatus.PROCESSED,
    ) in statuses
    assert stk_words(push).startswith("Paid: M-Pesa")
    assert ledger_verify()["is_valid"]


@pytest.mark.parametrize(
    ("last_digit", "code", "words"),
    [
        ("5", "1032", "cancelled the prompt"),
        ("6", "1037", "No response"),
        ("7", "2001", "Wrong M-Pesa PIN"),
        ("8", "1", "Not enough money"),
    ],
)
def test_a_failed_prompt_is_told_in_a_cashiers_words(daraja, last_digit, code, words):
    sale = SaleFactory(total=Decimal("100.00"))
    push = stk_push_for_sale(sale=sale, phone=f"071234567{last_digit}", by=None)
    assert settled(push)
    push.refresh_from_db()
    assert (push.status, push.result_code) == (StkStatus.FAILED, code)
    assert words in stk_words(push)
    sale.refresh_from_db()
    assert sale.status == SaleStatus.PENDING and not MpesaReceipt.objects.exists()


def test_a_prompt_without_a_callback_is_settled_by_query(daraja):
    sale = SaleFactory(total=Decimal("100.00"))
    push = stk_push_for_sale(sale=sale, phone="0712345679", by=None)
    time.sleep(0.3)
    assert StkPush.objects.get(pk=push.pk).status == StkStatus.REQUESTED
    call_command("mpesa_stk_settle", "--older-than", "0")
    push.refresh_from_db()
    assert (push.status, push.result_code) == (StkStatus.FAILED, "1037")


def test_repeated_unknown_and_odd_callbacks(daraja, live_server):
    sale = SaleFactory(total=Decimal("100.00"))
    push = stk_push_for_sale(sale=sale, phone="0712345675", by=None)
    assert settled(push)
    url = reverse("stk-callback", args=["test-webhook-token"])
    client = Client()

    def callback(checkout_id, code):
        body = {"Body": {"stkCallback": {"MerchantRequestID": "m", "CheckoutRequestID": checkout_id,
                                         "ResultCode": code, "ResultDesc": "x"}}}  # fmt: skip
        return client.post(url, data=json.dumps(body), content_type="application/json")

    assert callback(push.checkout_request_id, 1032).json()["ResultCode"] == 0
    assert WebhookLog.objects.filter(kind="stk_callback", status=WebhookStatus.DUPLICATE).count() == 1
    callback("ws_CO_not_ours", 0)  # kept for the retry a few times (it may overtake its prompt), then refused
    unknown = WebhookLog.objects.get(kind="stk_callback", status=WebhookStatus.FAILED)
    assert "No prompt ws_CO_not_ours was sent by us" in unknown.detail
    for _ in range(4):
        call_command("mpesa_retry_failed")
    unknown.refresh_from_db()
    assert unknown.status == WebhookStatus.REJECTED
    odd = stk_push_for_sale(sale=SaleFactory(total=Decimal("10.00")), phone="0712345679", by=None)
    callback(odd.checkout_request_id, 9999)
    odd.refresh_from_db()
    assert odd.status == StkStatus.NEEDS_REVIEW
    assert client.post(url, data=b"{}", content_type="application/json").status_code == 400


def test_the_waiting_screen_sends_and_follows_the_prompt(daraja):
    cashier, client = cashier_signed_in()
    sale = SaleFactory(total=Decimal("230.00"), cashier=cashier)
    url = reverse("pos-sale-prompt", args=[sale.reference])
    assert client.post(url, {"phone": "12345"}).status_code == 400
    sent = client.post(url, {"phone": "0712345670"}).json()
    assert sent["prompt"]["status"] == "REQUESTED" and "enter their M-Pesa PIN" in sent["prompt"]["words"]
    assert wait_for(lambda: client.get(url).json()["prompt"]["status"] == "PAID")
    assert client.get(reverse("pos-sale-status", args=[sale.reference])).json()["status"] == "PAID"


def test_a_cashier_is_told_at_once_when_the_server_waits_on_safaricom_for_all_it_may(daraja, settings):
    cashier, client = cashier_signed_in()
    sale = SaleFactory(total=Decimal("230.00"), cashier=cashier)
    settings.MPESA_CALLS_PER_PROCESS = 0  # every one of this process's Daraja slots already waiting
    refused = client.post(reverse("pos-sale-prompt", args=[sale.reference]), {"phone": "0712345670"})
    assert refused.status_code == 400
    assert "nothing was sent. Try again in a moment." in refused.json()["error"]
    assert not StkPush.objects.exists() and not daraja.state.pushes


def test_a_prompt_safaricom_did_not_answer_may_still_be_paid_and_then_pays_the_sale(
    daraja, safaricom_hanging
):
    sale = SaleFactory(total=Decimal("230.00"))
    safaricom_hanging()
    with pytest.raises(StkError, match="did not answer in time; the prompt may still reach"):
        stk_push_for_sale(sale=sale, phone="0712345670", by=None)
    kept = StkPush.objects.get()
    assert kept.status == StkStatus.UNANSWERED and "may still reach" in stk_words(kept)
    with pytest.raises(StkError, match="did not answer the last prompt"):  # no second prompt meanwhile
        stk_push_for_sale(sale=sale, phone="0712345670", by=None)
    # The customer paid the prompt after all: its C2B confirmation carries the sale's reference.
    body = payloads.body(payloads.c2b(trans_id="TKLATE0001", amount="230", account=sale.reference))
    answer = Client().post(
        "/api/webhooks/c2b/test-webhook-token/confirmation", data=body, content_type="application/json"
    )
    assert answer.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    sale.refresh_from_db()
    assert sale.status == SaleStatus.PAID and ledger_verify()["is_valid"]


def test_two_presses_at_once_send_the_customer_one_prompt(daraja):
    sale = SaleFactory(total=Decimal("230.00"))
    daraja.state.answer_delay = 0.5  # the later press comes while the first waits on Safaricom
    both_ready = threading.Barrier(2)
    outcomes = []

    def press():
        both_ready.wait()
        try:
            outcomes.append(stk_push_for_sale(sale=sale, phone="0712345670", by=None).status)
        except StkError as exc:
            outcomes.append(str(exc))
        finally:
            connection.close()

    presses = [threading.Thread(target=press) for _ in range(2)]
    for thread in presses:
        thread.start()
    for thread in presses:
        thread.join()
    assert StkStatus.REQUESTED in outcomes and len(outcomes) == 2
    [refusal] = [outcome for outcome in outcomes if outcome != StkStatus.REQUESTED]
    assert refusal.startswith(("A prompt for this sale is being sent now", "A prompt is already on"))
    assert len(daraja.state.pushes) == 1
    push = StkPush.objects.get()
    assert push.status == StkStatus.REQUESTED and push.checkout_request_id in daraja.state.pushes
    assert push.sent_at >= push.created_at


def test_a_prompt_being_sent_holds_the_sale_and_says_so(daraja):
    sale = SaleFactory(total=Decimal("230.00"))
    daraja.state.answer_delay = 1.0
    first = threading.Thread(target=lambda: (stk_push_for_sale(sale=sale, phone="0712345670", by=None),
                                             connection.close()))  # fmt: skip
    first.start()
    assert wait_for(lambda: StkPush.objects.filter(status=StkStatus.SENDING).exists())
    assert stk_words(StkPush.objects.get()) == "Sending the prompt to Safaricom."
    with pytest.raises(StkError, match="being sent now"):
        stk_push_for_sale(sale=sale, phone="0712345670", by=None)
    first.join()
    assert len(daraja.state.pushes) == 1


def test_the_wait_for_a_second_prompt_counts_from_when_safaricom_took_the_first(daraja):
    sale = SaleFactory(total=Decimal("100.00"))
    StkPush.objects.create(
        checkout_request_id="ws_CO_slow", sale=sale, account_reference=sale.reference, phone="254712345670",
        amount=Decimal("100.00"), sent_at=timezone.now() - timedelta(seconds=30),
    )  # fmt: skip
    # Pressed two minutes ago, taken by Safaricom 30 s ago (a slow answer): still on the phone.
    StkPush.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    with pytest.raises(StkError, match="already on the customer's phone"):
        stk_push_for_sale(sale=sale, phone="0712345670", by=None)
    StkPush.objects.update(sent_at=timezone.now() - timedelta(seconds=91))
    assert stk_push_for_sale(sale=sale, phone="0712345670", by=None).status == StkStatus.REQUESTED


def test_a_prompt_whose_answer_could_not_be_recorded_is_kept_as_unanswered(daraja, monkeypatch):
    cashier, client = cashier_signed_in()
    sale = SaleFactory(total=Decimal("100.00"), cashier=cashier)
    monkeypatch.setattr(DarajaClient, "stk_push", lambda self, **request: {"ResponseCode": "0"})
    url = reverse("pos-sale-prompt", args=[sale.reference])
    answered = client.post(url, {"phone": "0712345670"})
    assert answered.status_code == 400 and "could not be recorded" in answered.json()["error"]
    kept = StkPush.objects.get()
    assert kept.status == StkStatus.UNANSWERED and "CheckoutRequestID" in kept.result_desc and kept.sent_at
    assert answered.json()["prompt"]["status"] == StkStatus.UNANSWERED
    again = client.post(url, {"phone": "0712345670"})
    assert "did not answer the last prompt" in again.json()["error"]


def test_no_second_prompt_once_m_pesa_says_the_first_was_paid(daraja):
    sale = SaleFactory(total=Decimal("100.00"))
    StkPush.objects.create(
        checkout_request_id="ws_CO_paid", sale=sale, account_reference=sale.reference, phone="254712345670",
        amount=Decimal("100.00"), result_code="0", sent_at=timezone.now() - timedelta(minutes=10),
    )  # fmt: skip
    with pytest.raises(StkError, match="M-Pesa says the customer paid the last prompt"):
        stk_push_for_sale(sale=sale, phone="0712345670", by=None)
    assert not daraja.state.pushes


def test_a_prompt_stored_by_the_release_before_sent_at_still_holds_the_sale(daraja):
    sale = SaleFactory(total=Decimal("100.00"))
    StkPush.objects.create(
        checkout_request_id="ws_CO_old", sale=sale, account_reference=sale.reference, phone="254712345670",
        amount=Decimal("100.00"),
    )  # fmt: skip
    with pytest.raises(StkError, match="already on the customer's phone"):
        stk_push_for_sale(sale=sale, phone="0712345670", by=None)


def test_a_prompt_left_sending_by_a_stopped_server_counts_as_unanswered(daraja):
    sale = SaleFactory(total=Decimal("100.00"))
    stopped, in_flight = (
        StkPush.objects.create(
            checkout_request_id=f"sending-{n}",
            sale=sale,
            account_reference=sale.reference,
            phone="254712345670",
            amount=Decimal("100.00"),
            status=StkStatus.SENDING,
        )
        for n in range(2)
    )
    pressed = timezone.now() - sending_abandoned_after() - timedelta(seconds=1)
    StkPush.objects.filter(pk=stopped.pk).update(created_at=pressed)
    stk_settle_unanswered(older_than_seconds=0)
    stopped.refresh_from_db()
    in_flight.refresh_from_db()
    assert stopped.status == StkStatus.UNANSWERED and "server stopped" in stopped.result_desc
    # It went to Safaricom, if at all, before its call would have ended: the 90 s count from there.
    assert stopped.sent_at == pressed + sending_abandoned_after()
    assert in_flight.status == StkStatus.SENDING  # its server may still be waiting for the answer
    assert not daraja.state.requests_received["/mpesa/stkpushquery/v1/query"]


def test_settling_stops_asking_when_safaricom_does_not_answer(daraja, safaricom_hanging):
    for n in range(3):
        StkPush.objects.create(
            checkout_request_id=f"ws_CO_{n}", sale=SaleFactory(total=Decimal("100.00")),
            account_reference="x", phone="254712345670", amount=Decimal("100.00"),
        )  # fmt: skip
    connections_made = safaricom_hanging()
    assert stk_settle_unanswered(older_than_seconds=0) == []
    assert connections_made() == 1  # the other two wait for the next run, not a timeout each
    assert StkPush.objects.filter(status=StkStatus.REQUESTED).count() == 3
    # The cashier's "Check with M-Pesa" says so rather than showing nothing new.
    push = StkPush.objects.order_by("pk").first()
    cashier, client = cashier_signed_in()
    Sale.objects.filter(pk=push.sale_id).update(cashier=cashier)
    checked = client.post(reverse("pos-sale-prompt", args=[push.sale.reference]), {"check": "1"})
    assert checked.status_code == 400 and checked.json()["error"].startswith("Could not ask M-Pesa now:")
    assert checked.json()["prompt"]["status"] == "REQUESTED"


def test_a_second_prompt_is_refused_while_one_is_on_the_phone(daraja):
    sale = SaleFactory(total=Decimal("100.00"))
    stk_push_for_sale(sale=sale, phone="0712345679", by=None)  # never answered
    with pytest.raises(StkError, match="already on the customer's phone"):
        stk_push_for_sale(sale=sale, phone="0712345670", by=None)
    assert StkPush.objects.count() == 1


def test_a_confirmation_that_could_not_be_placed_is_given_to_the_prompts_sale(daraja, live_server):
    # The C2B confirmation of an STK payment arrives first, with an account number we cannot place.
    sale = SaleFactory(total=Decimal("300.00"))
    push = stk_push_for_sale(sale=sale, phone="0712345679", by=None)  # the fake sends no callback
    receipt_number = "TKSTKFIRST"
    Client().post(
        reverse("c2b-confirmation", args=["test-webhook-token"]),
        data=payloads_body(receipt_number, "300", account=""),
        content_type="application/json",
    )
    assert MpesaReceipt.objects.get().status == "UNALLOCATED"
    items = [
        {"Name": "Amount", "Value": 300},
        {"Name": "MpesaReceiptNumber", "Value": receipt_number},
        {"Name": "PhoneNumber", "Value": 254712345679},
    ]
    callback = {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": "m",
                "CheckoutRequestID": push.checkout_request_id,
                "ResultCode": 0,
                "ResultDesc": "ok",
                "CallbackMetadata": {"Item": items},
            }
        }
    }
    Client().post(
        reverse("stk-callback", args=["test-webhook-token"]),
        data=json.dumps(callback),
        content_type="application/json",
    )
    push.refresh_from_db()
    sale.refresh_from_db()
    receipt = MpesaReceipt.objects.get()
    assert (push.status, sale.status, receipt.status, receipt.unallocated_amount) == (
        StkStatus.PAID, SaleStatus.PAID, "SALE", Decimal("0.00"),
    )  # fmt: skip
    assert ledger_verify()["is_valid"]


@pytest.mark.django_db
@pytest.mark.parametrize("checkout_id", ["\u0000", "ws CO ODD", "ws_CO_" + "9" * 95, {"a": 1}])
def test_a_callback_whose_checkout_request_id_safaricom_never_issues_is_rejected_not_retried(checkout_id):
    # Found by the fuzzing test: a NUL failed the prompt's lookup, so the log stayed FAILED for ever.
    callback = {"MerchantRequestID": "m", "CheckoutRequestID": checkout_id, "ResultCode": 1032,
                "ResultDesc": "Request cancelled by user\u0000"}  # fmt: skip
    answer = Client().post(
        reverse("stk-callback", args=["test-webhook-token"]),
        data=json.dumps({"Body": {"stkCallback": callback}}),
        content_type="application/json",
    )
    assert answer.status_code == 200
    log = WebhookLog.objects.get()
    assert log.status == WebhookStatus.REJECTED and "CheckoutRequestID" in log.detail


@pytest.mark.django_db
@pytest.mark.parametrize("result_code", ["1e+28", "-1e+999", "0.0"])
def test_a_result_code_of_any_size_is_read_not_a_500(result_code):
    # Found by the fuzzing test: 1e+28 could not be written as a whole number, and the callback got a 500.
    sale = SaleFactory(total=Decimal("500.00"))
    push = StkPush.objects.create(
        checkout_request_id="ws_CO_BIG", sale=sale, account_reference=sale.reference,
        phone="254708374149", amount=sale.total,
    )  # fmt: skip
    body = (
        '{"Body": {"stkCallback": {"MerchantRequestID": "m", "CheckoutRequestID": "ws_CO_BIG", '
        f'"ResultCode": {result_code}, "ResultDesc": "odd"}}}}}}'
    )
    answer = Client().post(
        reverse("stk-callback", args=["test-webhook-token"]), data=body, content_type="application/json"
    )
    assert answer.status_code == 200
    assert WebhookLog.objects.get().status in (WebhookStatus.PROCESSED, WebhookStatus.REJECTED)
    push.refresh_from_db()
    assert not MpesaReceipt.objects.exists()


@pytest.mark.django_db
def test_a_nul_in_the_result_description_is_dropped_not_a_failure():
    sale = SaleFactory(total=Decimal("500.00"))
    push = StkPush.objects.create(
        checkout_request_id="ws_CO_NUL", sale=sale, account_reference=sale.reference,
        phone="254708374149", amount=sale.total,
    )  # fmt: skip
    callback = {"MerchantRequestID": "m", "CheckoutRequestID": "ws_CO_NUL", "ResultCode": "1032\u0000",
                "ResultDesc": "Request cancelled\u0000 by user"}  # fmt: skip
    Client().post(
        reverse("stk-callback", args=["test-webhook-token"]),
        data=json.dumps({"Body": {"stkCallback": callback}}),
        content_type="application/json",
    )
    push.refresh_from_db()
    assert (push.status, push.result_code, push.result_desc) == (
        StkStatus.FAILED,
        "1032",
        "Request cancelled by user",
    )
    assert WebhookLog.objects.get().status == WebhookStatus.PROCESSED


def payloads_body(trans_id, amount, account):
    return payloads.body(payloads.c2b(trans_id=trans_id, amount=amount, account=account))


@pytest.mark.django_db
@pytest.mark.parametrize("receipt_number", [{"00": None, "0\x1f": None}, "TK" + "X" * 29, "TK-0001"])
def test_a_paid_callback_whose_receipt_number_is_no_receipt_number_is_rejected_not_retried(receipt_number):
    # Found by the fuzzing test: the dict was stored as its text, too long for a receipt number, and
    # the callback failed again on every retry.
    sale = SaleFactory(total=Decimal("500.00"))
    push = StkPush.objects.create(
        checkout_request_id="ws_CO_ODD", sale=sale, account_reference=sale.reference,
        phone="254708374149", amount=sale.total,
    )  # fmt: skip
    items = [{"Name": "Amount", "Value": 500}, {"Name": "MpesaReceiptNumber", "Value": receipt_number}]
    callback = {"MerchantRequestID": "m", "CheckoutRequestID": "ws_CO_ODD", "ResultCode": 0,
                "ResultDesc": "ok", "CallbackMetadata": {"Item": items}}  # fmt: skip
    answer = Client().post(
        reverse("stk-callback", args=["test-webhook-token"]),
        data=json.dumps({"Body": {"stkCallback": callback}}),
        content_type="application/json",
    )
    assert answer.status_code == 200  # Safaricom is thanked; the log says why nothing was booked
    log = WebhookLog.objects.get()
    assert log.status == WebhookStatus.REJECTED and "MpesaReceiptNumber" in log.detail
    push.refresh_from_db()
    assert push.status == StkStatus.REQUESTED and not MpesaReceipt.objects.exists()


def post_confirmation(trans_id, amount, *, account):
    """Safaricom's C2B confirmation of the same payment; the webhook log it left."""
    answer = Client().post(
        reverse("c2b-confirmation", args=["test-webhook-token"]),
        data=payloads_body(trans_id, amount, account=account),
        content_type="application/json",
    )
    assert answer.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    return WebhookLog.objects.filter(kind="c2b_confirmation").latest("pk")


def retries_spent():
    """The scheduled retry runs until a callback for a prompt we do not know has had all its tries."""
    for _ in range(UNKNOWN_PROMPT_ATTEMPTS - 1):
        call_command("mpesa_retry_failed")


def post_paid_callback(checkout_id, *, receipt_number, amount, phone):
    items = [
        {"Name": "Amount", "Value": amount},
        {"Name": "MpesaReceiptNumber", "Value": receipt_number},
        {"Name": "TransactionDate", "Value": int(timezone.localtime().strftime("%Y%m%d%H%M%S"))},
        {"Name": "PhoneNumber", "Value": phone},
    ]
    callback = {"MerchantRequestID": "m", "CheckoutRequestID": checkout_id, "ResultCode": 0,
                "ResultDesc": "ok", "CallbackMetadata": {"Item": items}}  # fmt: skip
    answer = Client().post(
        reverse("stk-callback", args=["test-webhook-token"]),
        data=json.dumps({"Body": {"stkCallback": callback}}),
        content_type="application/json",
    )
    assert answer.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    return WebhookLog.objects.filter(kind="stk_callback").latest("pk")


def a_prompt_whose_id_was_lost(monkeypatch, *, total, phone="0712345670"):
    """A prompt Safaricom took, whose answer (and so its CheckoutRequestID) we could not record."""
    sale = SaleFactory(total=Decimal(total))
    with monkeypatch.context() as patched:
        patched.setattr(DarajaClient, "stk_push", lambda self, **request: {"ResponseCode": "0"})
        with pytest.raises(StkError, match="could not be recorded"):
            stk_push_for_sale(sale=sale, phone=phone, by=None)
    push = StkPush.objects.get(sale=sale)
    assert push.status == StkStatus.UNANSWERED
    return sale, push


def test_the_late_answer_of_a_prompt_whose_id_was_lost_pays_its_sale(daraja, monkeypatch):
    sale, push = a_prompt_whose_id_was_lost(monkeypatch, total="230.00")
    other_phone, _ = a_prompt_whose_id_was_lost(monkeypatch, total="230.00", phone="0712345671")
    other_amount, _ = a_prompt_whose_id_was_lost(monkeypatch, total="231.00")
    log = post_paid_callback("ws_CO_LOST", receipt_number="TKLOST0001", amount=230, phone=254712345670)
    assert log.status == WebhookStatus.PROCESSED, log.detail
    push.refresh_from_db()
    sale.refresh_from_db()
    assert (push.status, push.checkout_request_id, push.mpesa_receipt_number) == (
        StkStatus.PAID, "ws_CO_LOST", "TKLOST0001",
    )  # fmt: skip
    assert sale.status == SaleStatus.PAID
    receipt = MpesaReceipt.objects.get()
    assert (receipt.source, receipt.sale_payment.sale, receipt.unallocated_amount) == (
        ReceiptSource.STK, sale, Decimal("0.00"),
    )  # fmt: skip
    for untouched in (other_phone, other_amount):
        untouched.refresh_from_db()
        assert untouched.status == SaleStatus.PENDING
    # Its C2B confirmation, if Safaricom sends one, finds the receipt booked.
    post_confirmation("TKLOST0001", "230", account=sale.reference)
    assert WebhookLog.objects.get(kind="c2b_confirmation").status == WebhookStatus.DUPLICATE
    assert MpesaReceipt.objects.count() == 1 and ledger_verify()["is_valid"]


def test_a_paid_callback_no_prompt_can_be_tied_to_is_held_in_suspense_not_refused(daraja, monkeypatch):
    # Two prompts lost for the same phone and amount: the money is not guessed onto either sale.
    first_sale, _ = a_prompt_whose_id_was_lost(monkeypatch, total="500.00")
    second_sale, _ = a_prompt_whose_id_was_lost(monkeypatch, total="500.00")
    payer = customer_create(name="Wanjiku Kamau", phone="0712345670")
    log = post_paid_callback("ws_CO_WHICH", receipt_number="TKWHICH001", amount=500, phone=254712345670)
    assert log.status == WebhookStatus.FAILED  # it may have overtaken the saving of its prompt
    retries_spent()
    log.refresh_from_db()
    assert log.status == WebhookStatus.PROCESSED and log.trans_id == "TKWHICH001", log.detail
    assert "No prompt ws_CO_WHICH was sent by us" in log.detail
    receipt = MpesaReceipt.objects.get()
    assert (receipt.status, receipt.unallocated_amount, receipt.bill_ref_number) == (
        "UNALLOCATED", Decimal("500.00"), "",
    )  # fmt: skip
    assert receipt.unallocated_detail == (
        f"The payment names no account number. The payer's phone is {payer}'s."  # the callback names it
    )
    assert receipt.suggested_customer == payer
    assert ledger_verify()["is_valid"]
    # The C2B confirmation of the same payment names the sale: the money moves there from suspense.
    post_confirmation("TKWHICH001", "500", account=second_sale.reference)
    confirmation = WebhookLog.objects.get(kind="c2b_confirmation")
    assert confirmation.status == WebhookStatus.PROCESSED and "Moved from suspense" in confirmation.detail
    receipt.refresh_from_db()
    second_sale.refresh_from_db()
    first_sale.refresh_from_db()
    assert (receipt.status, receipt.unallocated_amount) == ("SALE", Decimal("0.00"))
    assert (second_sale.status, first_sale.status) == (SaleStatus.PAID, SaleStatus.PENDING)
    assert not ReceiptConflict.objects.exists() and ledger_verify()["is_valid"]


def test_a_lost_prompts_callback_after_its_confirmation_is_a_duplicate_not_a_conflict(daraja):
    sale = SaleFactory(total=Decimal("120.00"))
    post_confirmation("TKC2BFIRST", "120", account=sale.reference)
    log = post_paid_callback("ws_CO_GONE", receipt_number="TKC2BFIRST", amount=120, phone=254712345670)
    retries_spent()
    log.refresh_from_db()
    assert log.status == WebhookStatus.DUPLICATE, log.detail
    sale.refresh_from_db()
    assert sale.status == SaleStatus.PAID and MpesaReceipt.objects.count() == 1
    assert not ReceiptConflict.objects.exists() and ledger_verify()["is_valid"]


def test_a_prompt_lost_too_long_before_the_payment_is_not_matched_to_it(daraja, monkeypatch):
    _, push = a_prompt_whose_id_was_lost(monkeypatch, total="80.00")
    long_ago = timezone.now() - sending_abandoned_after() - PROMPT_OPEN_FOR - timedelta(seconds=1)
    StkPush.objects.filter(pk=push.pk).update(created_at=long_ago)
    log = post_paid_callback("ws_CO_LATE", receipt_number="TKLATE0002", amount=80, phone=254712345670)
    assert log.status == WebhookStatus.FAILED
    push.refresh_from_db()
    assert push.status == StkStatus.UNANSWERED and not MpesaReceipt.objects.exists()


def test_the_same_late_answer_delivered_at_once_pays_the_lost_prompts_sale_once(daraja, monkeypatch):
    sale, push = a_prompt_whose_id_was_lost(monkeypatch, total="640.00")
    _, errors = run_in_threads(
        4,
        lambda _: post_paid_callback(
            "ws_CO_TWICE", receipt_number="TKTWICE001", amount=640, phone=254712345670
        ),
    )
    assert not errors
    for _ in range(UNKNOWN_PROMPT_ATTEMPTS):
        call_command("mpesa_retry_failed")
    statuses = sorted(WebhookLog.objects.filter(kind="stk_callback").values_list("status", flat=True))
    assert statuses == [WebhookStatus.DUPLICATE] * 3 + [WebhookStatus.PROCESSED]
    push.refresh_from_db()
    sale.refresh_from_db()
    assert (push.status, push.checkout_request_id, sale.status) == (
        StkStatus.PAID, "ws_CO_TWICE", SaleStatus.PAID,
    )  # fmt: skip
    assert MpesaReceipt.objects.get().sale_payment.sale == sale and ledger_verify()["is_valid"]


def test_a_callback_is_not_taken_from_a_prompt_still_being_sent_by_an_older_lost_one(daraja, monkeypatch):
    # The same phone and amount: the older prompt's id was lost, and a newer one (for another sale) is
    # still being sent when a callback arrives ahead of its id: it may be the newer one's.
    lost_sale, lost = a_prompt_whose_id_was_lost(monkeypatch, total="300.00")
    newer_sale = SaleFactory(total=Decimal("300.00"))
    StkPush.objects.create(
        checkout_request_id="sending-newer", sale=newer_sale, account_reference=newer_sale.reference,
        phone="254712345670", amount=Decimal("300.00"), status=StkStatus.SENDING,
    )  # fmt: skip
    log = post_paid_callback("ws_CO_NEWER", receipt_number="TKNEWER001", amount=300, phone=254712345670)
    assert log.status == WebhookStatus.FAILED
    lost.refresh_from_db()
    lost_sale.refresh_from_db()
    assert (lost.status, lost_sale.status) == (StkStatus.UNANSWERED, SaleStatus.PENDING)
    assert not MpesaReceipt.objects.exists()


def test_prompts_lost_twice_for_one_sale_let_the_late_answer_pay_it(daraja, monkeypatch):
    sale, first = a_prompt_whose_id_was_lost(monkeypatch, total="150.00")
    StkPush.objects.filter(pk=first.pk).update(sent_at=timezone.now() - PROMPT_OPEN_FOR)
    with monkeypatch.context() as patched:  # the cashier pressed again after the wait: lost again
        patched.setattr(DarajaClient, "stk_push", lambda self, **request: {"ResponseCode": "0"})
        with pytest.raises(StkError, match="could not be recorded"):
            stk_push_for_sale(sale=sale, phone="0712345670", by=None)
    log = post_paid_callback("ws_CO_AGAIN", receipt_number="TKAGAIN001", amount=150, phone=254712345670)
    assert log.status == WebhookStatus.PROCESSED, log.detail
    sale.refresh_from_db()
    assert sale.status == SaleStatus.PAID
    paid, unanswered = StkPush.objects.order_by("-pk")
    assert (paid.status, paid.checkout_request_id, unanswered.status) == (
        StkStatus.PAID, "ws_CO_AGAIN", StkStatus.UNANSWERED,
    )  # fmt: skip


def test_a_paid_callback_of_no_prompt_with_an_amount_that_is_no_payment_is_refused_not_retried(daraja):
    log = post_paid_callback("ws_CO_ZERO", receipt_number="TKZERO0001", amount=0, phone=254712345670)
    retries_spent()
    log.refresh_from_db()
    assert log.status == WebhookStatus.REJECTED and "is not a payment" in log.detail
    assert not MpesaReceipt.objects.exists()


def test_a_later_delivery_naming_a_customer_leaves_the_money_in_suspense_for_a_person(daraja):
    customer = CustomerFactory()
    log = post_paid_callback("ws_CO_CUST", receipt_number="TKCUST0001", amount=700, phone=254712345670)
    retries_spent()
    log.refresh_from_db()
    assert log.status == WebhookStatus.PROCESSED, log.detail

    named = post_confirmation("TKCUST0001", "700", account=customer.code)
    assert named.status == WebhookStatus.DUPLICATE and "a person places it" in named.detail
    receipt = MpesaReceipt.objects.get()
    assert (receipt.status, receipt.unallocated_amount, receipt.bill_ref_number) == (
        "UNALLOCATED", Decimal("700.00"), customer.code,
    )  # fmt: skip
    assert customer.code in receipt.unallocated_detail
    # The account is the receipt's now: a delivery naming another is a conflict for review.
    assert post_confirmation("TKCUST0001", "700", account="SOMEONE-ELSE").status == WebhookStatus.CONFLICT
    assert ReceiptConflict.objects.count() == 1 and ledger_verify()["is_valid"]


def test_a_later_delivery_naming_another_sale_than_a_person_placed_it_on_is_a_conflict(daraja):
    placed_on, named = SaleFactory(total=Decimal("90.00")), SaleFactory(total=Decimal("90.00"))
    log = post_paid_callback("ws_CO_HAND", receipt_number="TKHAND0001", amount=90, phone=254712345670)
    retries_spent()
    log.refresh_from_db()
    receipt_assign(receipt=MpesaReceipt.objects.get(), reference=placed_on.reference, by=UserFactory())

    assert (
        post_confirmation("TKHAND0001", "90", account=placed_on.reference).status == WebhookStatus.DUPLICATE
    )
    assert not ReceiptConflict.objects.exists()
    # Safaricom named where the person placed it: the receipt keeps that account.
    assert MpesaReceipt.objects.get().bill_ref_number == placed_on.reference
    other = post_confirmation("TKHAND0001", "90", account=named.reference)
    assert other.status == WebhookStatus.CONFLICT and placed_on.reference in other.detail
    conflict = ReceiptConflict.objects.get()
    assert named.reference in conflict.differences
    receipt = MpesaReceipt.objects.get()
    named.refresh_from_db()
    assert (receipt.sale_payment.sale, receipt.bill_ref_number, named.status) == (
        placed_on, placed_on.reference, SaleStatus.PENDING,
    )  # fmt: skip
    assert ledger_verify()["is_valid"]


def test_a_paid_prompt_whose_sale_cannot_take_the_suspense_money_is_left_for_review_not_failing(daraja):
    # The C2B confirmation came first, naming no account, and the sale was cancelled before the
    # prompt's own callback came.
    cashier = UserFactory()
    sale = SaleFactory(total=Decimal("260.00"), cashier=cashier)
    push = StkPush.objects.create(
        checkout_request_id="ws_CO_CANCELLED", sale=sale, account_reference=sale.reference,
        phone="254712345670", amount=sale.total, sent_at=timezone.now(),
    )  # fmt: skip
    post_confirmation("TKCANC0001", "260", account="")
    sale_cancel(sale=sale, by=cashier)
    log = post_paid_callback("ws_CO_CANCELLED", receipt_number="TKCANC0001", amount=260, phone=254712345670)
    assert log.status == WebhookStatus.PROCESSED and f"Not assigned to {sale.reference}" in log.detail
    push.refresh_from_db()
    receipt = MpesaReceipt.objects.get()
    assert (push.status, receipt.status, receipt.unallocated_amount) == (
        StkStatus.NEEDS_REVIEW, "UNALLOCATED", Decimal("260.00"),
    )  # fmt: skip
    assert ledger_verify()["is_valid"]


def test_a_prompt_whose_server_stopped_mid_call_is_paid_by_its_late_answer(daraja):
    # The server stopped while Safaricom took the prompt: it stays SENDING, with no id of Safaricom's.
    sale = SaleFactory(total=Decimal("410.00"))
    stopped = StkPush.objects.create(
        checkout_request_id="sending-stopped", sale=sale, account_reference=sale.reference,
        phone="254712345670", amount=sale.total, status=StkStatus.SENDING,
    )  # fmt: skip
    # The customer pays at once; the callback finds no prompt, and is kept for the retry.
    log = post_paid_callback("ws_CO_STOPPED", receipt_number="TKSTOP0001", amount=410, phone=254712345670)
    assert log.status == WebhookStatus.FAILED
    # Minutes later the settle run gives the prompt up as unanswered, and the next retry pays the sale.
    pressed = timezone.now() - sending_abandoned_after() - timedelta(seconds=1)
    StkPush.objects.filter(pk=stopped.pk).update(created_at=pressed)
    WebhookLog.objects.filter(pk=log.pk).update(received_at=pressed + timedelta(seconds=30))
    call_command("mpesa_stk_settle", "--older-than", "0")
    call_command("mpesa_retry_failed")
    log.refresh_from_db()
    stopped.refresh_from_db()
    sale.refresh_from_db()
    assert log.status == WebhookStatus.PROCESSED, log.detail
    assert (stopped.status, stopped.checkout_request_id, sale.status) == (
        StkStatus.PAID, "ws_CO_STOPPED", SaleStatus.PAID,
    )  # fmt: skip
    assert ledger_verify()["is_valid"]


def test_safaricoms_own_late_callback_pays_the_sale_whose_prompt_id_we_lost(daraja, monkeypatch):
    # Over real HTTP: the fake Daraja takes the prompt and calls back as Safaricom does, but its answer
    # reaches us without the CheckoutRequestID, so the prompt is kept as UNANSWERED.
    daraja.state.c2b_first = False
    sale = SaleFactory(total=Decimal("370.00"))
    send = DarajaClient.stk_push

    def answer_lost_on_the_way(self, **request):
        answer = send(self, **request)
        return {key: value for key, value in answer.items() if key != "CheckoutRequestID"}

    monkeypatch.setattr(DarajaClient, "stk_push", answer_lost_on_the_way)
    with pytest.raises(StkError, match="could not be recorded"):
        stk_push_for_sale(sale=sale, phone="0712345670", by=None)  # ends in 0: the customer pays
    callback_delivered(daraja, "stk_callback")
    # Had the callback come while the prompt was still being recorded as sending, it waits for the
    # scheduled retry; by then the prompt is UNANSWERED.
    call_command("mpesa_retry_failed")
    assert wait_for(lambda: Sale.objects.get(pk=sale.pk).status == SaleStatus.PAID)
    push = StkPush.objects.get()
    assert push.status == StkStatus.PAID and push.checkout_request_id.startswith("ws_CO_")
    assert wait_for(lambda: len(daraja.callbacks) == 2)  # then its C2B confirmation: nothing more
    # Booked once, by whichever of the two callbacks was booked first.
    assert MpesaReceipt.objects.get().sale_payment.sale == sale and ledger_verify()["is_valid"]
