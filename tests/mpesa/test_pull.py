"""Pull Transactions recovers payments whose callback never came, exactly once."""

import json
import time
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from invoices.models import InvoiceStatus
from ledger.selectors import ledger_verify
from mpesa.fake_daraja import FakeDaraja, c2b_payment_payload
from mpesa.models import MpesaReceipt, ReceiptConflict, ReceiptSource, WebhookLog, WebhookStatus
from tests.invoices.factories import InvoiceFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def daraja(settings, live_server):
    fake = FakeDaraja(callback_delay=0.05).start()
    settings.MPESA_API_BASE = fake.url
    settings.MPESA_CONSUMER_KEY, settings.MPESA_CONSUMER_SECRET = "fake-key", "fake-secret"
    settings.MPESA_CALLBACK_BASE_URL = live_server.url
    call_command("mpesa_register_urls")
    yield fake
    fake.stop()


def test_payments_missed_during_an_outage_are_recovered_once(daraja, capsys):
    invoice = InvoiceFactory(amount=Decimal("3000.00"))
    daraja.state.drop_callbacks = True  # the callbacks never reach us
    for amount in ("1000", "1500", "500"):
        call_command("mpesa_simulate", "--amount", amount, "--account", invoice.number)
    assert not MpesaReceipt.objects.exists()

    call_command("mpesa_pull")
    assert "3 payment(s) listed by Safaricom; 3 recovered and booked" in capsys.readouterr().out
    assert set(MpesaReceipt.objects.values_list("source", flat=True)) == {ReceiptSource.PULL}
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID

    call_command("mpesa_pull")  # a schedule runs it again
    assert "0 recovered and booked (none); 3 already booked" in capsys.readouterr().out
    assert MpesaReceipt.objects.count() == 3
    # Payments listed again with nothing new add nothing to the webhook log.
    assert WebhookLog.objects.filter(kind="pull").count() == 3
    assert ledger_verify()["is_valid"]


def test_a_pulled_payment_that_differs_from_its_booking_is_logged_as_a_conflict(daraja, capsys):
    invoice = InvoiceFactory(amount=Decimal("900.00"))
    call_command("mpesa_simulate", "--amount", "900", "--account", invoice.number)
    assert wait_for_receipts(1)
    daraja.state.transactions[0]["amount"] = "9000"
    call_command("mpesa_pull")
    assert "0 recovered and booked (none); 1 already booked" in capsys.readouterr().out
    pulled = WebhookLog.objects.get(kind="pull")
    assert pulled.status == WebhookStatus.CONFLICT and "amount 9000.00" in pulled.detail
    assert ReceiptConflict.objects.get().receipt == MpesaReceipt.objects.get()
    assert MpesaReceipt.objects.get().amount == Decimal("900.00") and ledger_verify()["is_valid"]


def wait_for_receipts(count, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if MpesaReceipt.objects.count() >= count:
            return True
        time.sleep(0.05)
    return False


def test_a_callback_arriving_after_the_pull_books_nothing_more(daraja):
    invoice = InvoiceFactory(amount=Decimal("800.00"))
    daraja.state.drop_callbacks = True
    call_command("mpesa_simulate", "--amount", "800", "--account", invoice.number)
    call_command("mpesa_pull")
    pulled = daraja.state.transactions[0]
    late = c2b_payment_payload(shortcode="600000", amount=800, account=invoice.number, msisdn="254708374149")
    late["TransID"] = pulled["transactionId"]
    response = Client().post(
        reverse("c2b-confirmation", args=["test-webhook-token"]),
        data=json.dumps(late),
        content_type="application/json",
    )
    assert response.json()["ResultCode"] == 0
    assert MpesaReceipt.objects.count() == 1
    assert WebhookLog.objects.get(kind="c2b_confirmation").status == WebhookStatus.DUPLICATE
    assert ledger_verify()["is_valid"]
