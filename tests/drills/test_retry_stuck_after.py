"""`mpesa_retry_failed --stuck-after SECONDS`: what the drills run after killing a worker, so the logs
it left RECEIVED are booked now rather than after the usual five minutes."""

import io

import pytest
from django.core.management import call_command

from mpesa.models import MpesaReceipt, WebhookKind, WebhookStatus
from mpesa.services.c2b import webhook_log_record
from tests.invoices.factories import InvoiceFactory
from tests.mpesa import payloads

pytestmark = pytest.mark.django_db


def abandoned_confirmation(account):
    """A raw log written, then its worker killed before booking: left RECEIVED."""
    payload = payloads.c2b(trans_id="TKKILL0001", amount="700", account=account)
    return webhook_log_record(
        kind=WebhookKind.C2B_CONFIRMATION, body=payloads.body(payload), headers={}, source_ip="127.0.0.1"
    )


def test_a_fresh_received_log_waits_for_the_usual_age():
    log = abandoned_confirmation(InvoiceFactory().number)

    out = io.StringIO()
    call_command("mpesa_retry_failed", stdout=out)

    log.refresh_from_db()
    assert log.status == WebhookStatus.RECEIVED
    assert not MpesaReceipt.objects.exists()
    assert "0 failed callback(s) retried" in out.getvalue()


def test_stuck_after_zero_books_an_abandoned_log_once():
    invoice = InvoiceFactory()
    log = abandoned_confirmation(invoice.number)

    call_command("mpesa_retry_failed", "--stuck-after", "0", stdout=io.StringIO())
    call_command("mpesa_retry_failed", "--stuck-after", "0", stdout=io.StringIO())

    log.refresh_from_db()
    assert log.status == WebhookStatus.PROCESSED and log.attempts == 1
    assert MpesaReceipt.objects.get().trans_id == "TKKILL0001"
